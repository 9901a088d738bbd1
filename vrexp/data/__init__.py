"""Datasets: SynthWorld (image and video), media folders, pairs and samples on disk (media files
themselves are read and written by :mod:`vrexp.media`)."""
