"""What is measured: the generative model of a world, and its matrices in a storage format.

The lowest stage: it imports nothing else of memsweep.
"""
