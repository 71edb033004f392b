#include "host_approval.h"

#include <QDialogButtonBox>
#include <QLabel>
#include <QPushButton>
#include <QSettings>
#include <QVBoxLayout>

using namespace tally::dash;

namespace hostApproval {

namespace {
constexpr const char* kKey = "security/approved_sources";

QString entry(const DataSource& s) {
  return QString::fromStdString(urlHostPort(s.url) + " " + s.name);
}
}  // namespace

bool needsApproval(const DataSource& s) {
  return !s.headers.empty();
}

bool isApproved(const DataSource& s) {
  return !needsApproval(s) || QSettings().value(kKey).toStringList().contains(entry(s));
}

void approve(const DataSource& s) {
  if (!needsApproval(s)) return;
  QSettings settings;
  QStringList list = settings.value(kKey).toStringList();
  if (list.contains(entry(s))) return;
  list << entry(s);
  settings.setValue(kKey, list);
  qInfo("tally-dashboard: event=host_approved host=%s source=%s", urlHostPort(s.url).c_str(),
        s.name.c_str());
}

std::vector<DataSource> unapproved(const Dashboard& d) {
  std::vector<DataSource> out;
  for (const auto& s : d.sources)
    if (!isApproved(s)) out.push_back(s);
  return out;
}

bool allowedByFlag(const DataSource& s, const QStringList& hosts) {
  const QString hostPort = QString::fromStdString(urlHostPort(s.url));
  const QString host = hostPort.left(hostPort.lastIndexOf(':'));
  for (const QString& h : hosts) {
    const QString want = h.trimmed().toLower();
    if (!want.isEmpty() && (want == hostPort || want == host)) return true;
  }
  return false;
}

QString headerNames(const DataSource& s) {
  QStringList names;
  for (const auto& h : s.headers) names << QString::fromStdString(h.name);
  return names.join(", ");
}

}  // namespace hostApproval

HostApprovalDialog::HostApprovalDialog(const DataSource& source, const QString& dashboardPath,
                                       QWidget* parent)
    : QDialog(parent) {
  setObjectName("hostApprovalDialog");
  setWindowTitle(tr("Send credentials to a new host?"));
  const QString host = QString::fromStdString(urlHostPort(source.url));
  m_message = new QLabel(this);
  m_message->setObjectName("hostApprovalMessage");
  m_message->setWordWrap(true);
  m_message->setTextFormat(Qt::PlainText);
  m_message->setText(
      tr("The dashboard %1 has a data source “%2” that sends these headers to %3:\n\n    %4\n\n"
         "You have not allowed this source to send to this host before. A dashboard file can "
         "come from anyone: allow it only if you expect %3 to receive these credentials.\n\n"
         "Don't send: nothing goes to %3 from this source (its panels show why).")
          .arg(dashboardPath, QString::fromStdString(source.name), host,
               hostApproval::headerNames(source)));
  auto* buttons = new QDialogButtonBox(this);
  m_allow = buttons->addButton(tr("Allow %1").arg(host), QDialogButtonBox::AcceptRole);
  m_allow->setObjectName("allowHostButton");
  m_dontSend = buttons->addButton(tr("Don't send"), QDialogButtonBox::RejectRole);
  m_dontSend->setObjectName("dontSendButton");
  m_dontSend->setDefault(true);  // Enter does not send credentials
  connect(buttons, &QDialogButtonBox::accepted, this, &QDialog::accept);
  connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
  auto* layout = new QVBoxLayout(this);
  layout->addWidget(m_message);
  layout->addWidget(buttons);
}
