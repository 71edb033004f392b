#include "dashboard_tab.h"

#include <QScrollArea>
#include <QUndoStack>
#include <QVBoxLayout>

#include "alert_manager.h"
#include "dashboard_canvas.h"
#include "dashboard_document.h"
#include "data_sources.h"
#include "variable_bar.h"

DashboardTab::DashboardTab(CollectorClient* client, LiveSubscriber* live, QWidget* parent)
    : QWidget(parent),
      m_document(new DashboardDocument(this)),
      m_canvas(new DashboardCanvas(client, live, this)),
      m_variableBar(new VariableBar(client, this)),
      m_alerts(new AlertManager(m_canvas, this)) {
  auto* scroll = new QScrollArea(this);
  scroll->setWidget(m_canvas);
  scroll->setWidgetResizable(true);
  scroll->setFrameShape(QFrame::NoFrame);
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(0, 0, 0, 0);
  layout->setSpacing(0);
  layout->addWidget(m_variableBar);
  layout->addWidget(scroll, 1);

  m_variableBar->setDataSources(m_canvas->dataSources());
  connect(m_canvas->dataSources(), &DataSources::changed, m_variableBar, &VariableBar::reload);
  connect(m_variableBar, &VariableBar::valuesChosen, m_canvas, &DashboardCanvas::setVariableValues);
  connect(m_canvas, &DashboardCanvas::variablesChanged, m_variableBar,
          [this] { m_variableBar->setVariables(m_canvas->variables()); });
  // Looking at another time (range, zoom, live) is not an edit: only modified() marks the file.
  connect(m_canvas, &DashboardCanvas::modified, m_document,
          [this] { m_document->setModified(true); });
  // Undoing back to what was saved is unmodified again.
  connect(m_canvas->undoStack(), &QUndoStack::cleanChanged, m_document, [this](bool clean) {
    if (clean) m_document->setModified(false);
  });
}

QString DashboardTab::title() const {
  return QString::fromStdString(m_canvas->title());
}

QString DashboardTab::tabText() const {
  QString text = title();
  if (text.size() > 32) text = text.left(31) + QStringLiteral("…");
  if (m_document->isModified()) text += '*';
  if (const int firing = m_alerts->firingCount(); firing > 0)
    text += QStringLiteral(" ⚠%1").arg(firing);
  return text;
}
