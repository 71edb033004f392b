// Asking before a dashboard file sends credentials to a new host (docs/SECURITY.md, "A new host
// asks first"). A dashboard file can come from anyone; a data source in it with headers sends
// them (a token from the secret store or from ${TALLY_*} variables) to the host its URL names.
// Before the first request to such a source the user is asked, per (host, source): the host, the
// source and the names of the headers, Allow / Don't send. An approval is remembered in QSettings
// ("security/approved_sources": "host:port source" entries); sources the user adds or changes in
// Dashboard › Data sources are approved by that (the user typed them). Headless exports never
// ask: they refuse an unapproved host unless --allow-host names it.
// Thread-safety: the GUI (main) thread only.
#pragma once

#include <QDialog>
#include <QStringList>
#include <string>
#include <vector>

#include "core/dashboard.h"

class QLabel;
class QPushButton;

namespace hostApproval {
// Only a source that sends headers is asked about.
bool needsApproval(const tally::dash::DataSource& source);
bool isApproved(const tally::dash::DataSource& source);
void approve(const tally::dash::DataSource& source);
// The sources of `dashboard` with headers that are not approved, in file order.
std::vector<tally::dash::DataSource> unapproved(const tally::dash::Dashboard& dashboard);
// Whether --allow-host `hosts` ("host" for any port, or "host:port") covers the source's host.
bool allowedByFlag(const tally::dash::DataSource& source, const QStringList& hosts);
QString headerNames(const tally::dash::DataSource& source);  // "Authorization, X-Scope-OrgID"
}  // namespace hostApproval

// The question itself: accepted = Allow (and remembered), rejected = Don't send.
class HostApprovalDialog : public QDialog {
  Q_OBJECT
 public:
  HostApprovalDialog(const tally::dash::DataSource& source, const QString& dashboardPath,
                     QWidget* parent = nullptr);
  QLabel* message() const { return m_message; }
  QPushButton* allowButton() const { return m_allow; }
  QPushButton* dontSendButton() const { return m_dontSend; }

 private:
  QLabel* m_message;
  QPushButton* m_allow;
  QPushButton* m_dontSend;
};
