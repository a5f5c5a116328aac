"""Denoising a user's recordings: arrays, files, and audio that arrives in blocks.

denoiser.py  Denoiser: any rate, channel count, level or length in, the same out
stream.py    Stream: a trained CNN stepping through a signal block by block
files.py     recordings in and out: FileSource, FileStore, enhance_file, format tags
decoded.py   what PyAV decodes (MP3, FLAC, AAC, Opus...): AvSource, frame by frame
batch.py     enhance on many files: all checked first, the unreadable named at the end
score.py     enhance --score: DNSMOS before and after, and what it does not measure
which.py     the model enhance takes by default, and what a checkpoint heard
policy.py    the rules enhance applies (rate, channels, level, clipping) and their text
which.py     the model enhance takes when none is named; what a checkpoint heard
score.py     --score: DNSMOS of a file before and after
"""
