"""How good a denoiser is: the lab's losses over a set, the measures people read, the matrix.

sets.py        the lab's L1 and MSE over whole sets in batches (model_scores, predict)
quality.py     SNR, SI-SDR (training/losses.py's, averaged) and STOI over a set
perceptual.py  PESQ-WB, DNSMOS and spectral gating
matrix.py      every noise kind and SNR band of data/speech/matrix, for any model
figures.py     WAV files and figures to listen to and look at
"""
