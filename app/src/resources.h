// Registers the icons and shipped dashboards compiled into the static GUI library.
#pragma once

void initTallyResources();
