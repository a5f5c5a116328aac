"""Denoising a user's recordings: arrays, files, and audio that arrives in blocks.

denoiser.py  Denoiser: any rate, channel count, level or length in, the same out
stream.py    Stream: a trained CNN stepping through a signal block by block
demand.py    what a model may ask of a stream (context, activations), checked at load, torch-free
files.py     recordings in and out: FileSource, FileStore, enhance_file, format tags
decoded.py   what PyAV decodes (MP3, FLAC, AAC, Opus...): AvSource, frame by frame
batch.py     enhance on many files: all checked first, the unreadable named at the end
score.py     enhance --score: DNSMOS before and after, and what it does not measure
which.py     the model enhance takes by default, and what a checkpoint heard
policy.py    the rules enhance applies (rate, channels, level, clipping) and their text
live.py      cnn-denoise stream: audio from a pipe denoised as it arrives, and its rules
pipes.py     WAV headers read and written without seeking, raw PCM in and out
resample.py  Resampler: resample_poly's numbers for audio that arrives in blocks
engine.py    the model a block at a time on PyTorch or onnxruntime (torch-free), BlockStream
backend.py   load: a Denoiser on PyTorch or on onnxruntime (OnnxDenoiser)
"""
