"""Training on archives of labelled pairs: data, loss, Lightning task and checkpoints."""
