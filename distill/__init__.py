"""D2M: distill a dataset into a conditional generator; DSA augmentation; the DM baseline.

Takes tensors and plain config objects; never imports d2m_nas.
"""
