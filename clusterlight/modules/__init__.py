from clusterlight.modules.base import AudioModule
from clusterlight.modules.classifier import Classifier
from clusterlight.modules.finetune import JointFinetune
from clusterlight.modules.pretrain import EmbeddingPretrain

__all__ = ["AudioModule", "Classifier", "EmbeddingPretrain", "JointFinetune"]
