import subprocess
import sys


def test_torchvision_imports_through_the_compat_step():
    # A fresh interpreter: the compat step must work before anything else touched torchvision.
    code = ("from d2m_nas.torchvision_compat import import_torchvision, ensure_torchvision_importable\n"
            "tv = import_torchvision()\n"
            "from torchvision import datasets\n"
            "print(tv.__version__, ensure_torchvision_importable())\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    version, compiled = result.stdout.split()
    assert version and compiled in ("True", "False")
