"""The bundled WIT is plugin-sdk/wit, the one source of truth, unchanged."""

from pathlib import Path

HERE = Path(__file__).resolve().parent
BUNDLED = HERE.parent / "hookshape_plugin" / "wit"
SOURCE = HERE.parents[1] / "wit"


def test_the_bundled_wit_is_a_copy_of_plugin_sdk_wit():
    names = sorted(p.name for p in SOURCE.glob("*.wit"))
    assert names == sorted(p.name for p in BUNDLED.glob("*.wit"))
    for name in names:
        assert (BUNDLED / name).read_bytes() == (SOURCE / name).read_bytes(), (
            f"{BUNDLED / name} differs from {SOURCE / name}: copy it again "
            "(cp plugin-sdk/wit/*.wit plugin-sdk/python/hookshape_plugin/wit/)")
