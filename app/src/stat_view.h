// StatView: a stat or gauge panel on screen (StatPainter draws it, as in exports); the tile under
// the mouse shows the series' full name and every reduction as a tooltip.
#pragma once

#include <QWidget>

class PanelController;

class StatView : public QWidget {
  Q_OBJECT
 public:
  explicit StatView(PanelController* panel, QWidget* parent = nullptr);

 protected:
  void paintEvent(QPaintEvent* e) override;
  bool event(QEvent* e) override;

 private:
  PanelController* m_panel;
};
