// CIDR matching of client addresses: IPv4, IPv6, prefixes, families and Unix sockets.
#include "core/client_address.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <string>

using connbudget::AddressFamily;
using connbudget::AddressRange;
using connbudget::ClientAddress;

namespace {

ClientAddress address(const std::string& text) {
  ClientAddress a;
  if (inet_pton(AF_INET, text.c_str(), a.bytes) == 1) {
    a.family = AddressFamily::IPv4;
  } else {
    EXPECT_EQ(inet_pton(AF_INET6, text.c_str(), a.bytes), 1) << text;
    a.family = AddressFamily::IPv6;
  }
  return a;
}

AddressRange range(const std::string& cidr) {
  const auto slash = cidr.find('/');
  return AddressRange{address(cidr.substr(0, slash)), static_cast<std::uint8_t>(std::stoi(cidr.substr(slash + 1)))};
}

}  // namespace

TEST(ClientAddress, IPv4Prefixes) {
  EXPECT_TRUE(range("10.0.0.0/8").contains(address("10.1.2.3")));
  EXPECT_FALSE(range("10.0.0.0/8").contains(address("11.1.2.3")));
  EXPECT_TRUE(range("192.168.1.128/25").contains(address("192.168.1.200")));
  EXPECT_FALSE(range("192.168.1.128/25").contains(address("192.168.1.127")));
  EXPECT_TRUE(range("0.0.0.0/0").contains(address("8.8.8.8")));
  EXPECT_TRUE(range("127.0.0.1/32").contains(address("127.0.0.1")));
  EXPECT_FALSE(range("127.0.0.1/32").contains(address("127.0.0.2")));
}

TEST(ClientAddress, IPv6Prefixes) {
  EXPECT_TRUE(range("::1/128").contains(address("::1")));
  EXPECT_FALSE(range("::1/128").contains(address("::2")));
  EXPECT_TRUE(range("2001:db8::/32").contains(address("2001:db8:ffff::1")));
  EXPECT_FALSE(range("2001:db8::/33").contains(address("2001:db8:8000::1")));
  EXPECT_TRUE(range("fe80::/10").contains(address("febf::1")));
  EXPECT_FALSE(range("fe80::/10").contains(address("fec0::1")));
}

TEST(ClientAddress, FamiliesNeverMix) {
  EXPECT_FALSE(range("0.0.0.0/0").contains(address("::1")));
  EXPECT_FALSE(range("::/0").contains(address("127.0.0.1")));
  EXPECT_FALSE(range("::ffff:0:0/96").contains(address("10.0.0.1")));
}

TEST(ClientAddress, UnixSocketMatchesNoRange) {
  EXPECT_FALSE(range("0.0.0.0/0").contains(ClientAddress{}));
  EXPECT_FALSE(range("::/0").contains(ClientAddress{}));
}
