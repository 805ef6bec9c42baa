"""The Siamese semantic change network, its heads, and test-time augmentation."""

from geocd.models.siamese import ChangeLogits, ModelConfig, SiameseChangeNet
from geocd.models.tta import ChangeProbabilities, predict_probabilities

__all__ = ["ChangeLogits", "ChangeProbabilities", "ModelConfig", "SiameseChangeNet", "predict_probabilities"]
