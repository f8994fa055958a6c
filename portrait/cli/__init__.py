"""The composition root: the `portrait` command (app) and the end-to-end demo (demo). Only these modules compose the stages (training, registry, serving, ops)."""
