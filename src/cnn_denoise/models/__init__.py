"""The networks a run trains and `enhance` loads.

model.py       build (from params.yaml's model section), from_spec (from a checkpoint)
masknet.py     MaskNet, the masking CNN for recorded speech (docs/speech.md)
checkpoint.py  save, load, load_checkpoint: a file checked against what a model may ask for
shipped.py     the speech model shipped in shipped/ (weights and card): enhance's default
stepper.py     Stepper: a network one block at a time, its state explicit; WholeSignal
export.py      export: the ONNX files of `cnn-denoise export` (whole signal, and a block at a time)
"""
