"""U-Net variants rebuilt from nnU-Net plans, with state-dict keys that match nnU-Net's."""
