"""How good a denoiser is: the lab's losses over a set, the measures people read, the matrix.

sets.py        the lab's L1 and MSE over whole sets in batches (model_scores, predict)
quality.py     SNR, SI-SDR (training/losses.py's, averaged) and STOI over a set
perceptual.py  PESQ-WB, DNSMOS and spectral gating
systems.py     the systems every comparison scores (baselines, the neural peers), timed on one thread
matrix.py      every noise kind and SNR band of data/speech/matrix, for any model
headline.py    a scores JSON per system: means per noise kind, the best peer, the headline lines
figures.py     WAV files and figures to listen to and look at
"""
