/**
 * Golden IKEv2 messages for the codec tests, written out field by field from the bit layouts of
 * RFC 7296 §3 (header §3.1, generic payload header §3.2, SA §3.3, KE §3.4, ID §3.5, CERT §3.6,
 * CERTREQ §3.7, AUTH §3.8, Nonce §3.9, Notify §3.10, Delete §3.11, Vendor ID §3.12, TS §3.13,
 * SK §3.14, CP §3.15, EAP §3.16) and RFC 7383 §2.5 (SKF). Values come from the IANA IKEv2 registries.
 * The X25519 public keys are the ones of RFC 7748 §6.1; other key material, nonces, hashes and
 * ciphertexts are arbitrary bytes (the codec treats them as opaque).
 */

/** Joins hex fragments (spaces allowed) into a Buffer; rejects anything that is not hex. */
export function hex(...parts: string[]): Buffer {
  const s = parts.join('').replace(/\s+/g, '');
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(s)) throw new Error(`bad hex fixture: ${s}`);
  return Buffer.from(s, 'hex');
}

export const SPI_I = 'a1b2c3d4e5f60718';
export const SPI_R = '5f4e3d2c1b0a0918';
/** RFC 7748 §6.1 Alice's and Bob's X25519 public keys. */
export const X25519_ALICE = '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a';
export const X25519_BOB = 'de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f';
export const NONCE_I = '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f';
export const NONCE_R = 'f0e1d2c3b4a5968778695a4b3c2d1e0f00112233445566778899aabbccddeeff';
export const NATD_SRC = '0b2e4a5c7f1d3e5a6b7c8d9eaf00112233445566';
export const NATD_DST = '99887766554433221100ffeeddccbbaa01234567';
export const CA_HASH = '7c6f1e2d3c4b5a69788796a5b4c3d2e1f0010203';

/** IKE_SA_INIT request: HDR, SA (2 proposals), KEi, Ni, N(NAT_D src), N(NAT_D dst), N(FRAG), N(SIG_HASH), V. */
export const IKE_SA_INIT_REQUEST = hex(
  // --- IKE header (§3.1)
  SPI_I, //                   IKE SA Initiator's SPI
  '0000000000000000', //      IKE SA Responder's SPI: zero in the first message
  '21', //                    Next Payload: SA (33)
  '20', //                    MjVer 2, MnVer 0
  '22', //                    Exchange Type: IKE_SA_INIT (34)
  '08', //                    Flags: Initiator
  '00000000', //              Message ID 0
  '00000126', //              Length 294
  // --- SA payload (§3.3), 4 + 44 + 44 = 92 bytes
  '22 00 005c', //            Next Payload KE (34), C=0, Payload Length 92
  //   Proposal 1 (§3.3.1)
  '02 00 002c', //            Last Substruc 2 (more follow), RESERVED, Proposal Length 44
  '01 01 00 04', //           Proposal Num 1, Protocol ID IKE (1), SPI Size 0, Num Transforms 4
  '03 00 000c 01 00 0014', // Transform (§3.3.2): more (3), length 12, type ENCR (1), ID AES_GCM_16 (20)
  '800e 0100', //             Attribute (§3.3.5): AF=1 TV, type Key Length (14), value 256
  '03 00 0008 02 00 0005', // Transform: more, length 8, PRF (2), PRF_HMAC_SHA2_256 (5)
  '03 00 0008 04 00 001f', // Transform: more, length 8, KE (4), Curve25519 (31)
  '00 00 0008 04 00 0013', // Transform: last (0), length 8, KE (4), ECP-256 (19)
  //   Proposal 2
  '00 00 002c', //            Last Substruc 0 (last), RESERVED, Proposal Length 44
  '02 01 00 04', //           Proposal Num 2, IKE, SPI Size 0, 4 transforms
  '03 00 000c 01 00 000c', // ENCR AES_CBC (12), length 12
  '800e 0080', //             TV Key Length 128
  '03 00 0008 02 00 0005', // PRF_HMAC_SHA2_256
  '03 00 0008 03 00 000c', // INTEG (3) AUTH_HMAC_SHA2_256_128 (12)
  '00 00 0008 04 00 000e', // last: KE MODP-2048 (14)
  // --- KE payload (§3.4), 40 bytes
  '28 00 0028', //            Next Payload Nonce (40), Payload Length 40
  '001f 0000', //             DH Group Num 31 (Curve25519), RESERVED
  X25519_ALICE, //            Key Exchange Data (32 bytes)
  // --- Nonce payload (§3.9), 36 bytes
  '29 00 0024', //            Next Payload Notify (41), Payload Length 36
  NONCE_I, //                 Nonce Data (32 bytes)
  // --- Notify NAT_DETECTION_SOURCE_IP (§3.10, §2.23), 28 bytes
  '29 00 001c', //            Next Payload Notify, Payload Length 28
  '00 00 4004', //            Protocol ID 0, SPI Size 0, Notify Type 16388
  NATD_SRC, //                SHA-1(SPIs | IP | port), 20 bytes
  // --- Notify NAT_DETECTION_DESTINATION_IP, 28 bytes
  '29 00 001c', //            Next Payload Notify, Payload Length 28
  '00 00 4005', //            Notify Type 16389
  NATD_DST,
  // --- Notify IKEV2_FRAGMENTATION_SUPPORTED (RFC 7383 §2.3), 8 bytes
  '29 00 0008', //            Next Payload Notify, Payload Length 8
  '00 00 402e', //            Notify Type 16430, no data
  // --- Notify SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4), 14 bytes
  '2b 00 000e', //            Next Payload Vendor ID (43), Payload Length 14
  '00 00 402f', //            Notify Type 16431
  '0002 0003 0004', //        SHA2-256, SHA2-384, SHA2-512 (RFC 7427 hash algorithm IDs)
  // --- Vendor ID payload (§3.12), 20 bytes
  '00 00 0014', //            Next Payload none, Payload Length 20
  'f4ed19e0c114eb516faaac0ee37daf28', // Vendor ID (16 opaque bytes)
);

/** IKE_SA_INIT response: HDR, SA (1 proposal), KEr, Nr, N(NAT_D src), N(NAT_D dst), CERTREQ, N(MULTIPLE_AUTH), N(FRAG). */
export const IKE_SA_INIT_RESPONSE = hex(
  SPI_I, //                   IKE SA Initiator's SPI
  SPI_R, //                   IKE SA Responder's SPI
  '21 20 22 20', //           Next SA, version 2.0, IKE_SA_INIT, Flags: Response (0x20)
  '00000000', //              Message ID 0
  '000000f1', //              Length 241
  // --- SA (§3.3), 40 bytes: the chosen proposal keeps its number
  '22 00 0028', //            Next KE, Payload Length 40
  '00 00 0024', //            Proposal: last, length 36
  '01 01 00 03', //           Proposal Num 1, IKE, SPI Size 0, 3 transforms
  '03 00 000c 01 00 0014 800e 0100', // ENCR AES_GCM_16, Key Length 256
  '03 00 0008 02 00 0005', // PRF_HMAC_SHA2_256
  '00 00 0008 04 00 001f', // last: KE Curve25519
  // --- KE (§3.4), 40 bytes
  '28 00 0028 001f 0000', //  Next Nonce, length 40, group 31, RESERVED
  X25519_BOB,
  // --- Nonce (§3.9), 36 bytes
  '29 00 0024',
  NONCE_R,
  // --- N(NAT_DETECTION_SOURCE_IP), 28 bytes
  '29 00 001c 00 00 4004',
  NATD_DST,
  // --- N(NAT_DETECTION_DESTINATION_IP), 28 bytes
  '26 00 001c 00 00 4005', // Next Payload CERTREQ (38)
  NATD_SRC,
  // --- CERTREQ (§3.7), 25 bytes
  '29 00 0019', //            Next Notify, Payload Length 25
  '04', //                    Cert Encoding: X.509 Certificate - Signature (4)
  CA_HASH, //                 Certification Authority: SHA-1 of the CA's public key (20 bytes)
  // --- N(MULTIPLE_AUTH_SUPPORTED) (RFC 4739), 8 bytes
  '29 00 0008 00 00 4014',
  // --- N(IKEV2_FRAGMENTATION_SUPPORTED), 8 bytes
  '00 00 0008 00 00 402e', // Next Payload none
);

/** IKE_AUTH request as sent: HDR, SK{...} with an opaque body (IV 8 || ciphertext 40 || ICV 16). */
export const IKE_AUTH_REQUEST = hex(
  SPI_I,
  SPI_R,
  '2e', //                    Next Payload: SK (46)
  '20 23 08', //              version 2.0, Exchange IKE_AUTH (35), Flags: Initiator
  '00000001', //              Message ID 1
  '00000060', //              Length 96
  // --- Encrypted payload (§3.14), 68 bytes
  '23 00 0044', //            Next Payload IDi (35): first payload inside, Payload Length 68
  '0001020304050607', //      Initialization Vector (8 bytes, AES-GCM)
  '5b0e2c9a4f71d8e3b6a5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5', // ciphertext, 40 bytes
  'c0ffee00deadbeef0123456789abcdef', // Integrity Checksum Data (16 bytes)
);

/** Plaintext of an IKE_AUTH request SK payload (first payload IDi): IDi, CERT, N(INITIAL_CONTACT), CERTREQ, IDr, AUTH, CP, SA, TSi, TSr. */
export const IKE_AUTH_REQUEST_INNER = hex(
  // --- IDi (§3.5), 19 bytes
  '25 00 0013', //            Next CERT (37), Payload Length 19
  '02 000000', //             ID Type ID_FQDN (2), RESERVED
  '76706e2e6578616d706c65', // "vpn.example"
  // --- CERT (§3.6), 10 bytes
  '29 00 000a', //            Next Notify, Payload Length 10
  '04', //                    Cert Encoding: X.509 Certificate - Signature (4)
  '3003020101', //            DER SEQUENCE { INTEGER 1 } (opaque to the codec)
  // --- N(INITIAL_CONTACT), 8 bytes
  '26 00 0008 00 00 4000', // Next CERTREQ, Notify Type 16384
  // --- CERTREQ (§3.7), 25 bytes
  '24 00 0019 04', //         Next IDr (36), length 25, X.509 Signature
  CA_HASH,
  // --- IDr (§3.5), 12 bytes
  '27 00 000c', //            Next AUTH (39), Payload Length 12
  '01 000000', //             ID_IPV4_ADDR (1), RESERVED
  'c0000201', //              192.0.2.1
  // --- AUTH (§3.8), 40 bytes
  '2f 00 0028', //            Next CP (47), Payload Length 40
  '02 000000', //             Auth Method: Shared Key Message Integrity Code (2), RESERVED
  '8a7b6c5d4e3f20119a8b7c6d5e4f30219aab9ccddeeff0011223344556677889', // prf output (32 bytes)
  // --- CP (§3.15), 20 bytes
  '21 00 0014', //            Next SA, Payload Length 20
  '01 000000', //             CFG Type CFG_REQUEST (1), RESERVED
  '0001 0000', //             INTERNAL_IP4_ADDRESS (1), length 0
  '0003 0000', //             INTERNAL_IP4_DNS (3), length 0
  '0008 0000', //             INTERNAL_IP6_ADDRESS (8), length 0
  // --- SA (§3.3) for the Child SA, 36 bytes
  '2c 00 0024', //            Next TSi (44), Payload Length 36
  '00 00 0020', //            Proposal: last, length 32
  '01 03 04 02', //           Proposal Num 1, Protocol ESP (3), SPI Size 4, 2 transforms
  'c1a2b3d4', //              SPI (inbound ESP SPI of the initiator)
  '03 00 000c 01 00 0014 800e 0100', // ENCR AES_GCM_16, Key Length 256
  '00 00 0008 05 00 0000', // last: ESN (5), No Extended Sequence Numbers (0)
  // --- TSi (§3.13), 64 bytes
  '2d 00 0040', //            Next TSr (45), Payload Length 64
  '02 000000', //             Number of TSs 2, RESERVED
  '07 00 0010', //            TS_IPV4_ADDR_RANGE (7), IP Protocol any (0), Selector Length 16
  '0000 ffff', //             Start Port 0, End Port 65535
  '0a000000 0a0000ff', //     10.0.0.0 - 10.0.0.255
  '08 00 0028', //            TS_IPV6_ADDR_RANGE (8), any protocol, Selector Length 40
  '0000 ffff',
  '20010db8000000000000000000000000', // 2001:db8::
  '20010db800000000000000000000ffff', // 2001:db8::ffff
  // --- TSr (§3.13), 48 bytes
  '00 00 0030', //            Next none, Payload Length 48
  '01 000000', //             1 TS
  '08 11 0028', //            TS_IPV6_ADDR_RANGE, UDP (17), length 40
  '01f4 01f4', //             ports 500-500
  '20010db8000100000000000000000000', // 2001:db8:1::
  '20010db80001ffffffffffffffffffff', // 2001:db8:1:ffff:ffff:ffff:ffff:ffff
);

/** Plaintext of an IKE_AUTH response during EAP (first payload IDr): IDr, AUTH, EAP(Request/Identity). */
export const IKE_AUTH_EAP_RESPONSE_INNER = hex(
  '27 00 0012', //            IDr: Next AUTH, Payload Length 18
  '02 000000', //             ID_FQDN
  '67772e6578616d706c65', //  "gw.example"
  '30 00 0018', //            AUTH: Next EAP (48), Payload Length 24
  '01 000000', //             RSA Digital Signature (1)
  '00112233445566778899aabbccddeeff', // signature (16 opaque bytes)
  '00 00 0009', //            EAP (§3.16): Next none, Payload Length 9
  '01 2a 0005 01', //         EAP Code Request (1), Identifier 42, Length 5, Type Identity (1)
);

/** CREATE_CHILD_SA request as sent: HDR, SK{...} with an opaque 80-byte body. */
export const CREATE_CHILD_SA_REQUEST = hex(
  SPI_I,
  SPI_R,
  '2e 20 24 08', //           Next SK, version 2.0, CREATE_CHILD_SA (36), Initiator
  '00000002', //              Message ID 2
  '00000070', //              Length 112
  '29 00 0054', //            SK: Next Payload Notify (41) = first inner payload, Payload Length 84
  '1011121314151617', //      IV (8 bytes)
  '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff', // ciphertext (56 bytes) ...
  '00112233445566778899aabbccddeeff0011223344556677', //              ... continued
  '0123456789abcdef0123456789abcdef', // ICV (16 bytes)
);

/** Plaintext of a CREATE_CHILD_SA request rekeying a Child SA (§1.3.3): N(REKEY_SA), SA, Ni, KEi, TSi, TSr. */
export const CREATE_CHILD_SA_REQUEST_INNER = hex(
  // --- N(REKEY_SA) (§3.10), 12 bytes
  '21 00 000c', //            Next SA, Payload Length 12
  '03 04 4009', //            Protocol ESP (3), SPI Size 4, Notify Type REKEY_SA (16393)
  'c1a2b3d4', //              SPI of the Child SA being rekeyed
  // --- SA, 44 bytes
  '28 00 002c', //            Next Nonce, Payload Length 44
  '00 00 0028', //            Proposal: last, length 40
  '01 03 04 03', //           Num 1, ESP, SPI Size 4, 3 transforms
  'd4c3b2a1', //              new SPI
  '03 00 000c 01 00 0014 800e 0100', // ENCR AES_GCM_16 256
  '03 00 0008 04 00 001f', // KE Curve25519 (PFS)
  '00 00 0008 05 00 0000', // ESN none
  // --- Nonce, 36 bytes
  '22 00 0024', //            Next KE
  NONCE_I,
  // --- KE, 40 bytes
  '2c 00 0028 001f 0000', //  Next TSi, group 31
  X25519_ALICE,
  // --- TSi, 24 bytes
  '2d 00 0018 01 000000', //  Next TSr, length 24, 1 TS
  '07 00 0010 0000 ffff c0a80100 c0a801ff', // IPv4 192.168.1.0 - 192.168.1.255, any
  // --- TSr, 24 bytes
  '00 00 0018 01 000000', //  Next none
  '07 06 0010 0000 ffff c0a80200 c0a802ff', // IPv4 192.168.2.0 - 192.168.2.255, TCP (6)
);

/** INFORMATIONAL request as sent: HDR, SK{D} with an opaque 40-byte body. */
export const INFORMATIONAL_REQUEST = hex(
  SPI_I,
  SPI_R,
  '2e 20 25 08', //           Next SK, version 2.0, INFORMATIONAL (37), Initiator
  '00000003', //              Message ID 3
  '00000048', //              Length 72
  '2a 00 002c', //            SK: first inner payload Delete (42), Payload Length 44
  '2021222324252627', //      IV
  '30313233343536373839303132333435', // ciphertext (16 bytes)
  '40414243444546474849404142434445', // ICV
);

/** Plaintext of an INFORMATIONAL deleting two ESP SAs (§1.4.1): D. */
export const INFORMATIONAL_DELETE_ESP_INNER = hex(
  '00 00 0010', //            Delete (§3.11): Next none, Payload Length 16
  '03 04 0002', //            Protocol ESP, SPI Size 4, Num of SPIs 2
  'c1a2b3d4', //              SPI 1
  '0badf00d', //              SPI 2
);

/** Plaintext of an INFORMATIONAL deleting the IKE SA: D(IKE) with no SPIs. */
export const INFORMATIONAL_DELETE_IKE_INNER = hex(
  '00 00 0008', //            Delete: Next none, Payload Length 8
  '01 00 0000', //            Protocol IKE (1), SPI Size 0, Num of SPIs 0
);

/** First of three IKE_AUTH fragments (RFC 7383 §2.5): HDR, SKF{...}. */
export const IKE_AUTH_FRAGMENT_1 = hex(
  SPI_I,
  SPI_R,
  '35 20 23 08', //           Next SKF (53), version 2.0, IKE_AUTH, Initiator
  '00000001', //              Message ID 1 (all fragments share it)
  '00000054', //              Length 84
  '23 00 0038', //            SKF: Next Payload IDi (first inner payload, in fragment 1 only), Payload Length 56
  '0001 0003', //             Fragment Number 1, Total Fragments 3
  'a0a1a2a3a4a5a6a7', //      IV
  'b0b1b2b3b4b5b6b7b8b9babbbcbdbebfb0b1b2b3b4b5b6b7', // ciphertext (24 bytes)
  'c0c1c2c3c4c5c6c7c8c9cacbcccdcecf', // ICV
);

/** Second fragment: Next Payload 0 in every fragment but the first. */
export const IKE_AUTH_FRAGMENT_2 = hex(
  SPI_I,
  SPI_R,
  '35 20 23 08',
  '00000001',
  '0000004c', //              Length 76
  '00 00 0030', //            SKF: Next Payload 0, Payload Length 48
  '0002 0003', //             Fragment 2 of 3
  'a8a9aaabacadaeaf', //      IV
  'd0d1d2d3d4d5d6d7d8d9dadbdcdddedf', // ciphertext (16 bytes)
  'e0e1e2e3e4e5e6e7e8e9eaebecedeeef', // ICV
);

/** A message of a future major version 3: only the header is decoded. */
export const MAJOR_VERSION_3 = hex(
  SPI_I,
  '0000000000000000',
  '21 30 22 08', //           Next SA, MjVer 3 MnVer 0, IKE_SA_INIT, Initiator
  '00000000',
  '00000024', //              Length 36
  'ffffffffffffffff', //      payloads of an unknown format
);

/** Every outer golden message with a name (for the malformed corpus and the fuzzer). */
export const GOLDEN_MESSAGES: ReadonlyArray<readonly [string, Buffer]> = [
  ['IKE_SA_INIT request', IKE_SA_INIT_REQUEST],
  ['IKE_SA_INIT response', IKE_SA_INIT_RESPONSE],
  ['IKE_AUTH request', IKE_AUTH_REQUEST],
  ['CREATE_CHILD_SA request', CREATE_CHILD_SA_REQUEST],
  ['INFORMATIONAL request', INFORMATIONAL_REQUEST],
  ['IKE_AUTH fragment 1', IKE_AUTH_FRAGMENT_1],
  ['IKE_AUTH fragment 2', IKE_AUTH_FRAGMENT_2],
];

/** Every golden plaintext chain with its first payload type. */
export const GOLDEN_CHAINS: ReadonlyArray<readonly [string, number, Buffer]> = [
  ['IKE_AUTH request contents', 35, IKE_AUTH_REQUEST_INNER],
  ['IKE_AUTH EAP response contents', 36, IKE_AUTH_EAP_RESPONSE_INNER],
  ['CREATE_CHILD_SA request contents', 41, CREATE_CHILD_SA_REQUEST_INNER],
  ['INFORMATIONAL delete ESP contents', 42, INFORMATIONAL_DELETE_ESP_INNER],
  ['INFORMATIONAL delete IKE contents', 42, INFORMATIONAL_DELETE_IKE_INNER],
];
