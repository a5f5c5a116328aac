"""What a person reads at the end of a command.

summary.py  the table `make repro` and `make exps` print
compare.py  MLflow's runs side by side (`make compare`)
demo.py     a recording to listen to, denoised and measured (`make demo`)
ui.py       the addresses `make mlflow-ui` prints: the headline view, the registry
"""
