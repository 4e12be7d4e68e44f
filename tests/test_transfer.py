"""Host draws reach the device unchanged: on the CPU `to_device` is the tensor itself (a seed gives the
same values everywhere); tests/test_cuda.py checks the pinned, asynchronous path on a GPU."""

import torch

from distill.transfer import to_device


def test_on_the_cpu_the_tensor_is_kept_as_it_is():
    host = torch.arange(5)
    assert to_device(host, "cpu") is host and to_device(host, torch.device("cpu")) is host

