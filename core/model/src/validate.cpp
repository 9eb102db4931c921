#include <kpihub/validate.hpp>
