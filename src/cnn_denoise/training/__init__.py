"""Training a network: the loop, its optimisers, schedules and losses, one or many processes.

fit.py  fit, make_optimizer, the losses (L1, MSE, SI-SDR), DistributedDataParallel
"""
