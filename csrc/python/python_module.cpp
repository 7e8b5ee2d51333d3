// The Python extension module torch_al._C. Importing it runs the op registrations; the ops
// themselves never include Python.h, so the CMake build is a pure LibTorch library.
#include <Python.h>

extern "C" {
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
}
