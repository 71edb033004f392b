#include "theme.h"

#include <QApplication>
#include <QPalette>
#include <QSettings>
#include <QStyle>
#include <QStyleFactory>
#include <QWidget>

namespace Theme {

namespace {
const char* kSetting = "view/theme";
QPalette s_desktopPalette;
QString s_desktopStyle;
bool s_init = false;
bool s_dark = false;

bool desktopIsDark() {
  return s_desktopPalette.color(QPalette::Window).lightness() < 128;
}

QPalette darkPalette() {
  QPalette p;
  const QColor window(0x20, 0x21, 0x24), base(0x17, 0x18, 0x1a), text(0xe8, 0xea, 0xed);
  const QColor disabled(0x80, 0x86, 0x8b), button(0x2d, 0x2e, 0x31), highlight(0x8a, 0xb4, 0xf8);
  p.setColor(QPalette::Window, window);
  p.setColor(QPalette::WindowText, text);
  p.setColor(QPalette::Base, base);
  p.setColor(QPalette::AlternateBase, button);
  p.setColor(QPalette::ToolTipBase, button);
  p.setColor(QPalette::ToolTipText, text);
  p.setColor(QPalette::PlaceholderText, disabled);
  p.setColor(QPalette::Text, text);
  p.setColor(QPalette::Button, button);
  p.setColor(QPalette::ButtonText, text);
  p.setColor(QPalette::BrightText, Qt::white);
  p.setColor(QPalette::Link, highlight);
  p.setColor(QPalette::Highlight, highlight);
  p.setColor(QPalette::HighlightedText, QColor(0x20, 0x21, 0x24));
  p.setColor(QPalette::Light, QColor(0x3c, 0x40, 0x43));
  p.setColor(QPalette::Midlight, QColor(0x35, 0x36, 0x3a));
  p.setColor(QPalette::Mid, QColor(0x28, 0x29, 0x2c));
  p.setColor(QPalette::Dark, QColor(0x12, 0x13, 0x14));
  p.setColor(QPalette::Shadow, Qt::black);
  for (auto role : {QPalette::WindowText, QPalette::Text, QPalette::ButtonText})
    p.setColor(QPalette::Disabled, role, disabled);
  return p;
}
}  // namespace

const char* modeName(Mode m) {
  switch (m) {
    case Mode::Light:
      return "light";
    case Mode::Dark:
      return "dark";
    case Mode::System:
      return "system";
  }
  return "system";
}

Mode mode() {
  const QString v = QSettings().value(kSetting, "system").toString();
  if (v == "light") return Mode::Light;
  if (v == "dark") return Mode::Dark;
  return Mode::System;
}

void setMode(Mode m) {
  QSettings().setValue(kSetting, QString::fromLatin1(modeName(m)));
  apply();
}

void init() {
  if (s_init) return;
  s_init = true;
  s_desktopPalette = QApplication::palette();
  s_desktopStyle = QApplication::style() ? QApplication::style()->name() : QString();
  apply();
}

bool isDark() {
  return s_dark;
}

void apply() {
  if (!s_init) {
    init();
    return;
  }
  const Mode m = mode();
  const bool dark = m == Mode::Dark || (m == Mode::System && desktopIsDark());
  const bool wasDark = s_dark;
  s_dark = dark;
  if (dark && !desktopIsDark()) {
    // The desktop is light: draw dark ourselves, on Fusion (native styles ignore palettes).
    QApplication::setStyle(QStyleFactory::create("Fusion"));
    QApplication::setPalette(darkPalette());
  } else if (!dark && desktopIsDark()) {
    QApplication::setStyle(QStyleFactory::create("Fusion"));
    QApplication::setPalette(QApplication::style()->standardPalette());
  } else {
    if (!s_desktopStyle.isEmpty() && QApplication::style()->name() != s_desktopStyle)
      QApplication::setStyle(QStyleFactory::create(s_desktopStyle));
    QApplication::setPalette(s_desktopPalette);
  }
  if (wasDark != dark)
    for (QWidget* w : QApplication::topLevelWidgets()) w->update();
}

QColor text() {
  return s_dark ? QColor(0xe8, 0xea, 0xed) : QColor(0x20, 0x21, 0x24);
}
QColor mutedText() {
  return s_dark ? QColor(0x9a, 0xa0, 0xa6) : QColor(0x5f, 0x63, 0x68);
}
QColor panelBase() {
  return s_dark ? QColor(0x17, 0x18, 0x1a) : QColor(Qt::white);
}
QColor track() {
  return s_dark ? QColor(0x3c, 0x40, 0x43) : QColor(0xe8, 0xea, 0xed);
}
QColor tooltipBase() {
  return s_dark ? QColor(0x2d, 0x2e, 0x31, 235) : QColor(255, 255, 255, 225);
}

}  // namespace Theme
