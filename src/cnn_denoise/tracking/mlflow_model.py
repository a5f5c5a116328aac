"""The model each MLflow run logs, as MLflow "models from code": MLflow runs this file to
build it, so loading needs no pickle. It loads the train stage's checkpoint (a state dict,
torch.load with weights_only) and denoises float32 input of shape (batch, 1, N) for any N."""

import mlflow
import numpy as np
from mlflow.pyfunc import PythonModel


class CheckpointModel(PythonModel):
    def load_context(self, context):
        from cnn_denoise.models import checkpoint as ckpt

        self.model = ckpt.load(context.artifacts["checkpoint"])

    def predict(self, context, model_input: np.ndarray, params=None) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self.model(torch.as_tensor(np.asarray(model_input, dtype=np.float32))).numpy()


mlflow.models.set_model(CheckpointModel())
