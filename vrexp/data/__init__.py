"""Datasets: SynthWorld (image and video), media folders, the evaluation benchmarks' local
snapshots (:mod:`vrexp.data.benchmarks`), pairs and samples on disk (media files themselves are
read and written by :mod:`vrexp.media`)."""
