#include <kpihub/model_json.hpp>
