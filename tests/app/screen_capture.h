// Screen tests under a real X server: XvfbServer starts Xvfb on a display it picks itself
// (-displayfd, so parallel runs never collide) and captureScreen() reads what the X server shows
// with `xwd -root` (x11-apps), not what a widget's grab() paints offscreen: stale pixels left by
// a GL overlay or a black pop-up are only visible this way. Header-only; call start() before the
// QApplication exists.
#pragma once

#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>
#include <QByteArray>
#include <QImage>
#include <QProcess>
#include <QString>
#include <QtEndian>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>

class XvfbServer {
 public:
  ~XvfbServer() { stop(); }
  // Starts `Xvfb -displayfd` and waits (up to 10 s) for the display number. On success sets
  // DISPLAY and returns true; on failure `error` says why.
  bool start(const char* screen, QString* error) {
    int fds[2];
    if (pipe(fds) != 0) return fail(error, QString("pipe: %1").arg(strerror(errno)));
    m_pid = fork();
    if (m_pid < 0) return fail(error, QString("fork: %1").arg(strerror(errno)));
    if (m_pid == 0) {
      close(fds[0]);
      const std::string fd = std::to_string(fds[1]);
      execlp("Xvfb", "Xvfb", "-displayfd", fd.c_str(), "-screen", "0", screen, "-nolisten", "tcp",
             "-noreset", static_cast<char*>(nullptr));
      _exit(127);
    }
    close(fds[1]);
    std::string number;
    pollfd p{fds[0], POLLIN, 0};
    for (int waited = 0; waited < 10000 && number.find('\n') == std::string::npos;) {
      if (poll(&p, 1, 100) <= 0) {
        waited += 100;
        continue;
      }
      char buf[16];
      ssize_t n = read(fds[0], buf, sizeof buf);
      if (n <= 0) break;
      number.append(buf, size_t(n));
    }
    close(fds[0]);
    if (number.empty() || number.back() != '\n')
      return fail(error, "Xvfb did not report a display (is the xvfb package installed?)");
    number.pop_back();
    m_display = ":" + QString::fromStdString(number);
    qputenv("DISPLAY", m_display.toUtf8());
    return true;
  }
  void stop() {
    if (m_pid <= 0) return;
    kill(m_pid, SIGTERM);
    waitpid(m_pid, nullptr, 0);
    m_pid = -1;
  }
  QString display() const { return m_display; }

 private:
  bool fail(QString* error, const QString& why) {
    if (error) *error = why;
    stop();
    return false;
  }
  pid_t m_pid = -1;
  QString m_display;
};

// The whole X screen as the server holds it (xwd -root), as an RGB32 image; a null image and
// `error` when xwd is missing or its output is not a 24/32-bit TrueColor ZPixmap (masks 0xff0000,
// 0xff00, 0xff).
inline QImage captureScreen(QString* error) {
  QProcess xwd;
  xwd.start("xwd", {"-root", "-silent"});
  if (!xwd.waitForFinished(10000) || xwd.exitCode() != 0) {
    if (error)
      *error = "xwd -root failed (is the x11-apps package installed?): " + xwd.errorString();
    return {};
  }
  const QByteArray d = xwd.readAllStandardOutput();
  // XWDFileHeader: 25 big-endian CARD32 fields, then the window name up to header_size, then
  // ncolors XWDColor entries (12 bytes each), then the pixels in the image's own byte order.
  if (d.size() < 100) {
    if (error) *error = "xwd output too short";
    return {};
  }
  auto field = [&](int i) {
    return qFromBigEndian<quint32>(reinterpret_cast<const uchar*>(d.constData()) + 4 * i);
  };
  const quint32 headerSize = field(0), format = field(2), width = field(4), height = field(5),
                byteOrder = field(7), bpp = field(11), bpl = field(12), ncolors = field(19);
  const qsizetype offset = qsizetype(headerSize) + qsizetype(ncolors) * 12;
  if (format != 2 || (bpp != 32 && bpp != 24) || d.size() < offset + qsizetype(bpl) * height) {
    if (error)
      *error = QString("unexpected xwd image: format %1, %2 bits per pixel").arg(format).arg(bpp);
    return {};
  }
  QImage img(int(width), int(height), QImage::Format_RGB32);
  for (quint32 y = 0; y < height; ++y) {
    const uchar* row = reinterpret_cast<const uchar*>(d.constData()) + offset + qsizetype(y) * bpl;
    auto* out = reinterpret_cast<QRgb*>(img.scanLine(int(y)));
    for (quint32 x = 0; x < width; ++x) {
      const uchar* px = row + (bpp / 8) * x;
      const quint32 v = bpp == 32 ? (byteOrder == 0 ? qFromLittleEndian<quint32>(px)
                                                    : qFromBigEndian<quint32>(px))
                                  : (byteOrder == 0 ? quint32(px[0] | px[1] << 8 | px[2] << 16)
                                                    : quint32(px[2] | px[1] << 8 | px[0] << 16));
      out[x] = 0xff000000u | (v & 0xffffffu);
    }
  }
  return img;
}
