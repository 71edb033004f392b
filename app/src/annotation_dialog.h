// AnnotationDialog: marks an event (a deploy, an incident) on every panel of every dashboard that
// reads the collector: its time (a span when it has an end), a title, an optional text and tags
// ("service=api, env=prod"). What it returns is POSTed to /api/annotations (docs/API.md) by
// DashboardCanvas::postAnnotation.
#pragma once

#include <QDialog>

#include "core/api.h"

class QCheckBox;
class QDateTimeEdit;
class QDialogButtonBox;
class QLabel;
class QLineEdit;
class QPlainTextEdit;

class AnnotationDialog : public QDialog {
  Q_OBJECT
 public:
  // `at`: the time the dialog starts at (seconds since the epoch), where the user clicked.
  explicit AnnotationDialog(double at, QWidget* parent = nullptr);

  // The annotation as entered; an error naming the field when it is not valid (OK stays disabled
  // until it is).
  tally::Result<tally::dash::Annotation> annotation() const;

  QLineEdit* titleEdit() const { return m_title; }
  QPlainTextEdit* textEdit() const { return m_text; }
  QLineEdit* tagsEdit() const { return m_tags; }
  QDateTimeEdit* timeEdit() const { return m_time; }
  QCheckBox* spanCheck() const { return m_span; }
  QDateTimeEdit* endEdit() const { return m_end; }

 private:
  void validate();

  QDateTimeEdit* m_time;
  QCheckBox* m_span;
  QDateTimeEdit* m_end;
  QLineEdit* m_title;
  QPlainTextEdit* m_text;
  QLineEdit* m_tags;
  QLabel* m_error;
  QDialogButtonBox* m_buttons;
};
