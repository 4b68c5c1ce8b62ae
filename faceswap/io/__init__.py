"""All file, image and video I/O lives in this package."""
