"""Reading scene pairs: co-registration, validity and TorchGeo datasets."""
