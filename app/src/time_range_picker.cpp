#include "time_range_picker.h"

#include <QComboBox>
#include <QDateTimeEdit>
#include <QDialog>
#include <QDialogButtonBox>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QMessageBox>

#include "core/time_range.h"

using namespace tally::dash;

TimeRangePicker::TimeRangePicker(QWidget* parent) : QWidget(parent), m_combo(new QComboBox(this)) {
  m_combo->setObjectName("rangeCombo");
  for (const auto& p : rangePresets()) m_combo->addItem(tr(p.label), QString::fromLatin1(p.text));
  m_combo->addItem(tr("Custom…"), QStringLiteral("custom"));
  m_combo->setToolTip(tr("Time range shown by every panel"));
  auto* l = new QHBoxLayout(this);
  l->setContentsMargins(0, 0, 0, 0);
  l->addWidget(m_combo);
  connect(m_combo, &QComboBox::activated, this, &TimeRangePicker::onActivated);
  sync();
}

void TimeRangePicker::setRange(const TimeRangeSpec& range) {
  m_range = range;
  sync();
}

void TimeRangePicker::sync() {
  const int customIndex = m_combo->count() - 1;
  if (m_range.isCustom()) {
    m_combo->setItemText(customIndex,
                         QStringLiteral("%1 – %2").arg(
                             QString::fromStdString(formatLocalTime(*m_range.from)).left(16),
                             QString::fromStdString(formatLocalTime(*m_range.to)).left(16)));
    m_combo->setCurrentIndex(customIndex);
    return;
  }
  m_combo->setItemText(customIndex, tr("Custom…"));
  int i = m_combo->findData(QString::fromStdString(m_range.relative));
  if (i < 0) {
    // A relative range that is not a preset (from a file): show it as an extra entry.
    m_combo->insertItem(customIndex, tr("Last %1").arg(QString::fromStdString(m_range.relative)),
                        QString::fromStdString(m_range.relative));
    i = customIndex;
  }
  m_combo->setCurrentIndex(i);
}

void TimeRangePicker::onActivated(int index) {
  const QString choice = m_combo->itemData(index).toString();
  if (choice == QLatin1String("custom")) {
    if (!askCustom()) {
      sync();
      return;
    }
  } else {
    m_range = TimeRangeSpec{};
    m_range.relative = choice.toStdString();
  }
  sync();
  emit rangeChanged(m_range);
}

bool TimeRangePicker::askCustom() {
  QDialog dlg(this);
  dlg.setWindowTitle(tr("Custom time range"));
  auto* from = new QDateTimeEdit(&dlg);
  auto* to = new QDateTimeEdit(&dlg);
  for (auto* e : {from, to}) {
    e->setCalendarPopup(true);
    e->setDisplayFormat("yyyy-MM-dd HH:mm:ss");
    e->setTimeSpec(Qt::LocalTime);
  }
  QDateTime now = QDateTime::currentDateTime();
  from->setDateTime(m_range.isCustom() ? QDateTime::fromSecsSinceEpoch(*m_range.from)
                                       : now.addSecs(-3600));
  to->setDateTime(m_range.isCustom() ? QDateTime::fromSecsSinceEpoch(*m_range.to) : now);
  auto* form = new QFormLayout(&dlg);
  form->addRow(tr("From (local time)"), from);
  form->addRow(tr("To (local time)"), to);
  auto* buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel, &dlg);
  form->addRow(buttons);
  connect(buttons, &QDialogButtonBox::accepted, &dlg, &QDialog::accept);
  connect(buttons, &QDialogButtonBox::rejected, &dlg, &QDialog::reject);
  while (dlg.exec() == QDialog::Accepted) {
    qint64 f = from->dateTime().toSecsSinceEpoch(), t = to->dateTime().toSecsSinceEpoch();
    if (t <= f) {
      QMessageBox::warning(&dlg, tr("Custom time range"), tr("'To' must be after 'From'."));
      continue;
    }
    m_range.from = f;
    m_range.to = t;
    return true;
  }
  return false;
}
