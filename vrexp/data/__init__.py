"""Datasets: SynthWorld (image and video), media I/O, and (later) real dataset adapters."""
