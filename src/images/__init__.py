"""Reading and writing images with their geometry; arrays are (c, z, y, x), spacing (z, y, x)."""
from .image import Image, check_same_grid
from .nifti import NIFTI_SUFFIXES, find_cases, read_case, read_image, write_image, write_label_image

__all__ = ["Image", "check_same_grid", "read_image", "read_case", "write_label_image",
           "write_image", "find_cases", "NIFTI_SUFFIXES"]
