"""Stage 2, rules/training.smk: train the CNN classifiers and the Viola-Jones cascades from a
dataset's training faces and face-free scenes."""
