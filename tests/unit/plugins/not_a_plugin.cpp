// A perfectly good shared library that is not a kpihub plugin: it exports a
// function, but not kpihub_plugin_entry. Someone dropped it in the plugin
// folder by mistake; the gate must say so and carry on.
extern "C" __attribute__((visibility("default"))) int kpihub_test_unrelated_function() {
  return 42;
}
