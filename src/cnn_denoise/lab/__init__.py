"""Lab 2B of Penn's ESE 2000, as the course set it (docs/lab.md).

filters.py    MIMOFilter: Y = sum_k S^k X H_k, four interchangeable backends
cnn.py        MIMOCNN and CNN: layers of MIMO filters with tanh
synth.py      the offline stand-in for the course's dataset
dataset.py    the dataset zip read safely, validated and split
baselines.py  what a CNN must beat in closed form: the least-squares FIR filter, zeros, low-pass
warmstart.py  a CNN started as that least-squares filter
"""
