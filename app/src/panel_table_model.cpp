#include "panel_table_model.h"

#include "core/csv.h"
#include "panel_controller.h"

PanelTableModel::PanelTableModel(QObject* parent) : QAbstractTableModel(parent) {}

void PanelTableModel::setTable(std::vector<std::vector<std::string>> rows) {
  beginResetModel();
  m_header.clear();
  m_rows.clear();
  if (!rows.empty()) {
    m_header = std::move(rows.front());
    m_rows.assign(std::make_move_iterator(rows.begin() + 1), std::make_move_iterator(rows.end()));
  }
  endResetModel();
}

void PanelTableModel::setFromPanel(const PanelController& panel) {
  setTable(tally::dash::parseCsv(panel.csv()));
}

int PanelTableModel::rowCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : int(m_rows.size());
}

int PanelTableModel::columnCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : int(m_header.size());
}

QVariant PanelTableModel::data(const QModelIndex& index, int role) const {
  if (!index.isValid() || index.row() >= int(m_rows.size())) return {};
  const auto& row = m_rows[size_t(index.row())];
  if (index.column() >= int(row.size())) return {};
  const std::string& field = row[size_t(index.column())];
  if (role == Qt::DisplayRole) return QString::fromStdString(field);
  if (role == Qt::TextAlignmentRole) {
    bool numeric = false;
    QString::fromStdString(field).toDouble(&numeric);
    return numeric ? QVariant(Qt::AlignRight | Qt::AlignVCenter)
                   : QVariant(Qt::AlignLeft | Qt::AlignVCenter);
  }
  return {};
}

QVariant PanelTableModel::headerData(int section, Qt::Orientation orientation, int role) const {
  if (role != Qt::DisplayRole) return {};
  if (orientation == Qt::Horizontal)
    return section < int(m_header.size())
               ? QVariant(QString::fromStdString(m_header[size_t(section)]))
               : QVariant();
  return section + 1;
}
