// TimeRangePicker: the toolbar's range choice: last 5 m, 15 m, 1 h, 6 h, 24 h, 7 d, 30 d, or a
// custom from/to in local time (a small dialog).
#pragma once

#include <QWidget>

#include "core/dashboard.h"

class QComboBox;

class TimeRangePicker : public QWidget {
  Q_OBJECT
 public:
  explicit TimeRangePicker(QWidget* parent = nullptr);

  tally::dash::TimeRangeSpec range() const { return m_range; }
  void setRange(const tally::dash::TimeRangeSpec& range);  // no signal
  QComboBox* combo() const { return m_combo; }

 signals:
  void rangeChanged(const tally::dash::TimeRangeSpec& range);

 private:
  void onActivated(int index);
  void sync();
  bool askCustom();

  QComboBox* m_combo;
  tally::dash::TimeRangeSpec m_range;
};
