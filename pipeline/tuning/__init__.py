"""Stage 4, rules/tuning.smk: choose each tuned detector's operating point on the tune sets
only (role ``tune``), one choice per training draw, written with every candidate's score; the
detect stage runs the detector with the written choice."""
