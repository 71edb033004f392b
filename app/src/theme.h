// Theme: light or dark, following the desktop by default (View ▸ Theme; setting "view/theme":
// "system", "light" or "dark"). "system" reads the palette the desktop gave the app when it
// started (Qt 6.4 has no colour-scheme query): dark when its window colour is dark. Dark is
// Qt's Fusion style with a dark palette, and the charts' dark Qt Charts theme; exports (PNG, SVG,
// PDF) are always drawn light, for documents and tickets.
// Thread-safety: GUI thread.
#pragma once

#include <QColor>
#include <QString>

namespace Theme {

enum class Mode { System, Light, Dark };
Mode mode();                      // the setting
void setMode(Mode mode);          // saved, and applied at once
const char* modeName(Mode mode);  // "system", "light", "dark"

// Captures the desktop's palette and style; call once, after QApplication exists and before
// apply(). Applies the saved setting.
void init();
// Whether the app is drawn dark now.
bool isDark();
// Applies mode() to the application (palette, style) and tells the widgets (a palette change).
void apply();

// Colours for what the app paints itself, per theme.
QColor text();       // main text on the panel background
QColor mutedText();  // labels, hints
QColor panelBase();  // a panel's background
QColor track();      // a gauge's empty arc, table banding
QColor tooltipBase();

}  // namespace Theme
