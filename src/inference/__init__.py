"""Prediction: sliding window, mirroring, fold ensembling, regions, export, postprocessing."""
