"""Training a network: the loop, its optimisers and schedules, its losses, one or many processes.

fit.py       fit, the optimisers (plain SGD, Adam, L-BFGS), schedules, weight averaging, DDP
losses.py    LOSSES (L1, SNR, SI-SDR) and si_sdr_db, the project's one SI-SDR
progress.py  Progress: tqdm's bar on a terminal, a line per epoch (at most one a minute) in a log
"""
