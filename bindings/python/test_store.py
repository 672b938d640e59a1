"""Binding tests of FitKartStore: the generated Python module against the real built library.

Run with `bash bindings/test.sh`, or after `cargo build -p fitkart-ffi` with
`python3 bindings/python/test_store.py`. FITKART_FFI_LIBRARY may point at the library to load;
otherwise it is looked up in $CARGO_TARGET_DIR/debug or target/debug.
"""

import importlib
import os
import shutil
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def library_file_name():
    if sys.platform == "darwin":
        return "libfitkart_ffi.dylib"
    if sys.platform.startswith("win"):
        return "fitkart_ffi.dll"
    return "libfitkart_ffi.so"


def built_library():
    explicit = os.environ.get("FITKART_FFI_LIBRARY")
    if explicit:
        return explicit
    target_dir = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
    return os.path.join(target_dir, "debug", library_file_name())


def load_bindings(module_dir):
    """Imports the generated module from module_dir, next to a copy of the built library,
    which is where the generated module looks for it."""
    library = built_library()
    if not os.path.isfile(library):
        raise RuntimeError(f"{library} not found: run `cargo build -p fitkart-ffi` first")
    shutil.copy(os.path.join(HERE, "fitkart_ffi.py"), module_dir)
    shutil.copy(library, os.path.join(module_dir, library_file_name()))
    sys.path.insert(0, module_dir)
    try:
        return importlib.import_module("fitkart_ffi")
    finally:
        sys.path.remove(module_dir)


class FitKartStoreTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.module_dir = tempfile.TemporaryDirectory()
        cls.ffi = load_bindings(cls.module_dir.name)

    @classmethod
    def tearDownClass(cls):
        cls.module_dir.cleanup()

    def setUp(self):
        self.data_dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.data_dir.cleanup)

    def test_opening_a_new_file_creates_a_migrated_database(self):
        path = os.path.join(self.data_dir.name, "fitkart.db")

        store = self.ffi.FitKartStore.open(path)

        self.assertGreater(store.schema_version(), 0)
        self.assertTrue(os.path.isfile(path))

    def test_reopening_a_file_keeps_its_schema_version(self):
        path = os.path.join(self.data_dir.name, "fitkart.db")
        first = self.ffi.FitKartStore.open(path).schema_version()

        second = self.ffi.FitKartStore.open(path).schema_version()

        self.assertEqual(first, second)

    def test_opening_a_path_in_a_missing_directory_raises_storage(self):
        path = os.path.join(self.data_dir.name, "missing", "jane.doe@example.com.db")

        with self.assertRaises(self.ffi.FitKartError.Storage) as raised:
            self.ffi.FitKartStore.open(path)

        message = str(raised.exception)
        self.assertNotIn("jane.doe", message, "errors must not carry personal data")
        self.assertFalse(os.path.exists(path))


if __name__ == "__main__":
    unittest.main(verbosity=2)
