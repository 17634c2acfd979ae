"""Stage 1, rules/data.smk: build each test and training set, then alter its test images into
the variants (shadow, cartoon, ...). Readers per annotation format, dataset and variant
registries."""
