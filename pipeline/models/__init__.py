"""What a model is, shared by the stages that train, run and draw it: the CNN architectures,
Haar features and the cascade's XML form and evaluation."""
