#include "resources.h"

#include <QtGlobal>

void initTallyResources() {
  Q_INIT_RESOURCE(tally);
}
