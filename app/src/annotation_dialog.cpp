#include "annotation_dialog.h"

#include <QCheckBox>
#include <QDateTimeEdit>
#include <QDialogButtonBox>
#include <QFormLayout>
#include <QLabel>
#include <QLineEdit>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QVBoxLayout>

#include "core/dashboard.h"

using namespace tally;
using namespace tally::dash;

static QDateTimeEdit* newTimeEdit(double at, QWidget* parent) {
  auto* edit = new QDateTimeEdit(QDateTime::fromMSecsSinceEpoch(qint64(at * 1000)), parent);
  edit->setDisplayFormat("yyyy-MM-dd HH:mm:ss");
  edit->setCalendarPopup(true);
  return edit;
}

AnnotationDialog::AnnotationDialog(double at, QWidget* parent)
    : QDialog(parent),
      m_time(newTimeEdit(at, this)),
      m_span(new QCheckBox(tr("Until"), this)),
      m_end(newTimeEdit(at, this)),
      m_title(new QLineEdit(this)),
      m_text(new QPlainTextEdit(this)),
      m_tags(new QLineEdit(this)),
      m_error(new QLabel(this)),
      m_buttons(new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel, this)) {
  setWindowTitle(tr("Add annotation"));
  setObjectName("annotationDialog");
  m_title->setObjectName("annotationTitle");
  m_title->setPlaceholderText(tr("Deploy api v1.4.2"));
  m_text->setObjectName("annotationText");
  m_text->setPlaceholderText(tr("Optional: what happened, a link"));
  m_text->setFixedHeight(80);
  m_tags->setObjectName("annotationTags");
  m_tags->setPlaceholderText(tr("service=api, env=prod"));
  m_end->setEnabled(false);
  m_error->setStyleSheet("color: #d93025");
  m_error->setWordWrap(true);
  auto* when = new QHBoxLayout;
  when->addWidget(m_time);
  when->addWidget(m_span);
  when->addWidget(m_end);
  auto* form = new QFormLayout;
  form->addRow(tr("Time"), when);
  form->addRow(tr("Title"), m_title);
  form->addRow(tr("Text"), m_text);
  form->addRow(tr("Tags"), m_tags);
  auto* layout = new QVBoxLayout(this);
  layout->addLayout(form);
  layout->addWidget(m_error);
  layout->addWidget(
      new QLabel(tr("Shown on every panel that reads the collector, in every dashboard."), this));
  layout->addWidget(m_buttons);
  connect(m_buttons, &QDialogButtonBox::accepted, this, &QDialog::accept);
  connect(m_buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
  connect(m_span, &QCheckBox::toggled, m_end, &QWidget::setEnabled);
  connect(m_span, &QCheckBox::toggled, this, &AnnotationDialog::validate);
  connect(m_time, &QDateTimeEdit::dateTimeChanged, this, &AnnotationDialog::validate);
  connect(m_end, &QDateTimeEdit::dateTimeChanged, this, &AnnotationDialog::validate);
  connect(m_title, &QLineEdit::textChanged, this, &AnnotationDialog::validate);
  connect(m_tags, &QLineEdit::textChanged, this, &AnnotationDialog::validate);
  validate();
  m_title->setFocus();
}

Result<Annotation> AnnotationDialog::annotation() const {
  Annotation a;
  a.time = double(m_time->dateTime().toMSecsSinceEpoch()) / 1000;
  if (m_span->isChecked()) {
    a.end = double(m_end->dateTime().toMSecsSinceEpoch()) / 1000;
    if (*a.end <= a.time) return Status::invalid_argument("the end must be after the time");
  }
  a.title = m_title->text().trimmed().toStdString();
  if (a.title.empty()) return Status::invalid_argument("a title is needed");
  a.text = m_text->toPlainText().trimmed().toStdString();
  auto tags = parseFilterList(m_tags->text().toStdString());
  if (!tags) return Status::invalid_argument("tags: " + tags.status().message());
  for (const TagFilter& f : *tags) {
    if (f.op != FilterOp::Eq)
      return Status::invalid_argument("tags: '" + f.toString() + "' is not key=value");
    a.tags.push_back({f.key, f.value});
  }
  return a;
}

void AnnotationDialog::validate() {
  const auto a = annotation();
  // An empty title is the starting state, not a mistake to point at.
  const bool untitled = m_title->text().trimmed().isEmpty();
  m_error->setText(a || untitled ? QString() : QString::fromStdString(a.status().message()));
  m_buttons->button(QDialogButtonBox::Ok)->setEnabled(bool(a));
}
