// PanelTableModel: a panel's shown data as a table, row for row what the CSV export holds (the
// header row becomes the column titles). The whole table is swapped in between begin/end reset.
#pragma once

#include <QAbstractTableModel>
#include <string>
#include <vector>

class PanelController;

class PanelTableModel : public QAbstractTableModel {
  Q_OBJECT
 public:
  explicit PanelTableModel(QObject* parent = nullptr);

  // Rows of fields; the first is the header.
  void setTable(std::vector<std::vector<std::string>> rows);
  void setFromPanel(const PanelController& panel);

  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override;
  QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
  QVariant headerData(int section, Qt::Orientation orientation,
                      int role = Qt::DisplayRole) const override;

 private:
  std::vector<std::string> m_header;
  std::vector<std::vector<std::string>> m_rows;
};
