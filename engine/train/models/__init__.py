"""The model a run trains: the seed CNN, Keras Applications backbones, or the user's own .keras file.

settings.py   which model and weights (checked without TensorFlow)  check_model_settings
build.py      BuiltModel and build_model, called inside the placement scope
seed.py       the seed notebook's CNN (seed, seed-bn)
backbones.py  Keras Applications backbones with a new head, ImageNet weights from Keras' cache
user_file.py  a user's .keras model, rebuilt from its config
training.py   freezing and fine-tuning, weights copied between models
flops.py      forward FLOPs, parameters and batch-normalization layers of any model
archive.py    what a .keras file may contain, loaded in Keras' safe mode
files.py      inference copies and digests for the record
"""
