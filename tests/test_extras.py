"""A stack parity drives is either missing (name the extra to install) or installed and failing to load (say
so, with the reason): a user under `ulimit -v` must not be told to install what is already there."""

import sys

import pytest

from parity.errors import ParityExtraError
from parity.extras import require


def test_a_missing_package_names_the_extra_and_a_failing_one_says_why(tmp_path, monkeypatch):
    (tmp_path / "fails_to_load").mkdir()
    (tmp_path / "fails_to_load" / "__init__.py").write_text(
        "raise OSError('libcudart.so.12: failed to map segment from shared object')\n")
    (tmp_path / "needs_another").mkdir()
    (tmp_path / "needs_another" / "__init__.py").write_text("import not_installed_anywhere\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ParityExtraError, match=r"the DALI runner needs .* pip install 'parity\[dali\]'"):
        require("no_such_package_here", "dali", "the DALI runner")
    with pytest.raises(ParityExtraError) as failing:
        require("fails_to_load", "dali", "the DALI runner")
    assert str(failing.value).startswith("the DALI runner: 'fails_to_load' is installed but fails to import: "
                                         "OSError: libcudart.so.12: failed to map segment from shared object")
    assert "pip install" not in str(failing.value)
    with pytest.raises(ParityExtraError, match=r"'needs_another' is installed but fails to import: "
                                               r"ModuleNotFoundError: No module named 'not_installed_anywhere'"):
        require("needs_another", "dali", "the DALI runner")
    for name in ("fails_to_load", "needs_another"):
        sys.modules.pop(name, None)
