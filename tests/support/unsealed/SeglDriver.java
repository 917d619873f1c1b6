import java.io.ByteArrayInputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.ZonedDateTime;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import javax.xml.parsers.DocumentBuilderFactory;
import javax.xml.xpath.XPathExpressionException;

import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.NodeList;
import org.xml.sax.SAXException;

import com.trifork.unsealed.BootstrapToken;
import com.trifork.unsealed.BootstrapTokenBuilder;
import com.trifork.unsealed.BootstrapTokenIssuer;
import com.trifork.unsealed.CertAndKey;
import com.trifork.unsealed.IdCard;
import com.trifork.unsealed.IdCardBuilder;
import com.trifork.unsealed.IdentityToken;
import com.trifork.unsealed.KeyStoreLoader;
import com.trifork.unsealed.NSPEnv;
import com.trifork.unsealed.NsPrefixes;
import com.trifork.unsealed.OIOSAMLToken;
import com.trifork.unsealed.OIOSAMLTokenBuilder;
import com.trifork.unsealed.STSInvocationException;
import com.trifork.unsealed.SamlUtil;
import com.trifork.unsealed.SignatureUtil;
import com.trifork.unsealed.UserIdCard;
import com.trifork.unsealed.XPathContext;
import com.trifork.unsealed.XmlUtil;

/**
 * segl's test driver for trifork/unsealed: runs one token exchange through unsealed's public API
 * against an STS and prints one JSON line on stdout.
 *
 * <pre>
 * java -cp UNSEALED_CLASSES:DRIVER_CLASSES SeglDriver COMMAND --sts URL [options]
 *
 * Key stores are PKCS#12 (or .jks) files loaded with unsealed's KeyStoreLoader; their password
 * comes from the environment variable SEGL_KEYSTORE_PASSWORD (never from the command line, never
 * printed).
 *
 * dgws-idcard   --keystore P12 [--cpr C] [--role R] [--occupation O] [--authorization-code A]
 *               [--email E] [--system-name S] [--dgws-1.0] [--legacy-sts] --out FILE
 *     IdCardBuilder.buildUserIdCard (level 4, signed by the key store's MOCES key), IdCard.sign()
 *     at /sts/services/NewSecurityTokenService, then IdCard.validate() (times and signature);
 *     writes the issued card.
 * sosi2oiosaml  (dgws-idcard options) --audience URL [--audience-keystore P12] --out FILE
 *               [--card-out FILE]
 *     dgws-idcard, then IdCard.exchangeToOIOSAMLToken(audience) at /sts/services/Sosi2OIOSaml.
 *     unsealed decrypts an EncryptedAssertion with the key of the card's own key store (the
 *     MOCES key); with --audience-keystore the token is rebuilt with that key instead
 *     (OIOSAMLTokenBuilder.spCertAndKey) before decrypt(). Writes the (decrypted) assertion.
 * oiosaml2sosi  --token FILE --keystore P12 --system-name S [--role R] [--authorization-code A]
 *               --out FILE
 *     OIOSAMLTokenBuilder.fromXml(token).spCertAndKey(keystore), then
 *     OIOSAMLToken.exchangeToIdCard at /sts/services/OIOSaml2Sosi (request signed with the key
 *     store's key); validates and writes the card. unsealed reads only OIOSAML 2 (DK-SAML-2.0)
 *     tokens here.
 * bst2sosi      --idp-keystore P12 --keystore P12 --uuid U --cvr C --org-name N --audience URL
 *               --system-name S [--role R] [--occupation O] [--authorization-code A]
 *               [--bst-out FILE] --out FILE
 *     BootstrapTokenIssuer (issuer https://idp.test.nspop.dk, signed by the IdP key store,
 *     holder-of-key for the SP key store) issueForProfessional, then
 *     BootstrapToken.exchangeToUserIdCard at /sts/services/BST2SOSI (request signed with the SP
 *     key); validates and writes the card.
 * bst2idws      --idp-keystore P12 --keystore P12 --cpr C --audience URL
 *               [--on-behalf-of CPR --on-behalf-of-kind PROCURATION|WARD|PARTLY_WARD|PARENT_AUTHORITY]
 *               [--bst-out FILE] [--response-out FILE] --out FILE
 *     BootstrapTokenIssuer (signed by the IdP key store, holder-of-key for the SP key store)
 *     .cpr(C).issueForCitizen(), then BootstrapToken.exchangeToIdentityToken(audience, cpr[,
 *     on-behalf-of CPR, OnBehalfOfClaimType]) at /sts/services/Bst2Idws (request signed with the
 *     SP key). Then the identity token is read back as unsealed's own tests read it (see
 *     "identity token" below). Writes the identity token (the saml:Assertion) to --out and, with
 *     --response-out, the whole response envelope as unsealed parsed it.
 * jwt2idws      --keystore P12 --jwt-file FILE --cpr C --audience URL [--response-out FILE]
 *               --out FILE
 *     BootstrapTokenBuilder.fromJwt(the file's text).spCertAndKey(keystore).build(), then
 *     exchangeToIdentityToken(audience, cpr) at /sts/services/JWT2Idws; same read-back and output.
 * parse-oiosaml-response --response FILE --audience-keystore P12 --out FILE
 *     For JWT2OIOSaml, which unsealed cannot call (its README: "not yet implemented"): reads an
 *     STS answer that the caller posted itself, and turns it into an OIOSAMLToken with the steps
 *     of IdCard.exchangeToOIOSAMLToken after its WSHelper.post (quoted in the method; that
 *     parsing is inline there, so it is repeated here with unsealed's own classes), the key of
 *     the audience key store standing in for the card's key. Then decrypt() and the getters a
 *     service provider reads, validateTimes() (no drift allowed) and SignatureUtil.validate.
 *     Writes the decrypted assertion; a SOAP fault in the answer is reported as WSHelper.post
 *     reports it (STSInvocationException).
 *
 * Identity token read-back (unsealed's IdentityToken has only public fields: assertion, audience
 * -- the audience the caller asked for, not read from the token --, created and expires from the
 * RSTR's wst:Lifetime, which unsealed parses with ZonedDateTime.parse): prints them, the checks of
 * unsealed's BootstrapTokenTest (created before now, expires after created + 5 s: an exception
 * if either fails), the token's own AudienceRestriction, CPR attribute, and, as unsealed's tests
 * decode them, the Privileges_intermediate PrivilegeGroup Scope and the SubjectRelations
 * VerifiedRelation relatedPersonID/relationType; finally SignatureUtil.validate (unsealed's
 * signature check with the certificate in the signature's KeyInfo).
 *
 * Output: {"status":"ok",...} (exit 0), {"status":"fault","faultcode":...,"faultstring":...}
 * when the STS answered a SOAP fault (exit 2), {"status":"error","error":...} otherwise (exit 1).
 * </pre>
 */
public class SeglDriver {
    private static final Map<String, String> out = new LinkedHashMap<>();

    public static void main(String[] argv) {
        int exit;
        try {
            if (argv.length == 0) {
                throw new IllegalArgumentException("usage: SeglDriver dgws-idcard|sosi2oiosaml|oiosaml2sosi|bst2sosi|bst2idws|jwt2idws|parse-oiosaml-response ...");
            }
            Args args = new Args(argv);
            out.put("command", args.command);
            switch (args.command) {
                case "dgws-idcard":
                    write(args.required("out"), dgwsIdCard(args).getXml());
                    break;
                case "sosi2oiosaml":
                    sosi2oiosaml(args);
                    break;
                case "oiosaml2sosi":
                    oiosaml2sosi(args);
                    break;
                case "bst2sosi":
                    bst2sosi(args);
                    break;
                case "bst2idws":
                    bst2idws(args);
                    break;
                case "jwt2idws":
                    jwt2idws(args);
                    break;
                case "parse-oiosaml-response":
                    parseOiosamlResponse(args);
                    break;
                default:
                    throw new IllegalArgumentException("unknown command " + args.command);
            }
            args.checkAllUsed();
            out.put("status", "ok");
            exit = 0;
        } catch (STSInvocationException e) {
            out.put("status", "fault");
            out.put("exception", e.getClass().getName());
            out.put("faultcode", e.getFaultCode());
            out.put("faultstring", e.getFaultString());
            out.put("faultactor", e.getFaultActor());
            if (e.getFaultCode() == null) {
                // Not a SOAP fault (unparseable response): the message says why.
                out.put("error", String.valueOf(e.getMessage()) + (e.getCause() != null ? ": " + e.getCause() : ""));
            }
            exit = 2;
        } catch (Exception e) {
            out.put("status", "error");
            out.put("exception", e.getClass().getName());
            out.put("error", e.getClass().getName() + ": " + e.getMessage());
            exit = 1;
        }
        System.out.println(json(out));
        System.exit(exit);
    }

    /** Builds, signs (at the STS) and validates a level-4 user ID card. */
    private static UserIdCard dgwsIdCard(Args args) throws Exception {
        NSPEnv env = NSPEnv.fromUrl(args.required("sts"));
        IdCardBuilder builder = new IdCardBuilder().env(env).certAndKey(load(args.required("keystore")));
        if (args.has("cpr")) builder = builder.cpr(args.get("cpr"));
        if (args.has("role")) builder = builder.role(args.get("role"));
        if (args.has("occupation")) builder = builder.occupation(args.get("occupation"));
        if (args.has("authorization-code")) builder = builder.authorizationCode(args.get("authorization-code"));
        if (args.has("email")) builder = builder.email(args.get("email"));
        if (args.has("system-name")) builder = builder.systemName(args.get("system-name"));
        builder = builder.uselegacyDGWS_1_0(args.flag("dgws-1.0"));
        UserIdCard card = builder.buildUserIdCard();
        if (args.flag("legacy-sts")) {
            card.signUsingLegacySTSService();
        } else {
            card.sign();
        }
        out.put("card_issuer", card.getIssuer());
        out.put("card_validated", "false");
        card.validate();
        out.put("card_validated", "true");
        describe(card, "card_");
        return card;
    }

    private static void sosi2oiosaml(Args args) throws Exception {
        UserIdCard card = dgwsIdCard(args);
        if (args.has("card-out")) write(args.get("card-out"), card.getXml());
        String audience = args.required("audience");
        OIOSAMLToken token = card.exchangeToOIOSAMLToken(audience);
        if (args.has("audience-keystore")) {
            token = new OIOSAMLTokenBuilder().spCertAndKey(load(args.get("audience-keystore")))
                    .assertion(token.getAssertion()).build();
        }
        out.put("encrypted", String.valueOf(token.isEncrypted()));
        if (token.isEncrypted()) {
            token.decrypt();
        }
        Element assertion = token.getAssertion();
        assertion.setIdAttribute("ID", true);
        out.put("spec_version", token.getSpecVersion());
        out.put("common_name", token.getCommonName());
        out.put("cpr", token.getCpr());
        out.put("cvr", token.getCvrNumberIdentifier());
        out.put("audience", token.getAudienceRestriction());
        out.put("assurance_level", token.getAssuranceLevel());
        token.validateTimes(60);
        SignatureUtil.validate(assertion, true);
        out.put("token_validated", "true");
        write(args.required("out"), XmlUtil.node2String(assertion, false, false));
    }

    private static void oiosaml2sosi(Args args) throws Exception {
        NSPEnv env = NSPEnv.fromUrl(args.required("sts"));
        String xml = Files.readString(Path.of(args.required("token")), StandardCharsets.UTF_8);
        OIOSAMLToken token = new OIOSAMLTokenBuilder().env(env).spCertAndKey(load(args.required("keystore")))
                .fromXml(xml).build();
        IdCard card = token.exchangeToIdCard(args.required("system-name"), args.get("authorization-code"), args.get("role"));
        validated(card);
        write(args.required("out"), card.getXml());
    }

    private static void bst2sosi(Args args) throws Exception {
        NSPEnv env = NSPEnv.fromUrl(args.required("sts"));
        BootstrapToken bst = new BootstrapTokenIssuer().env(env)
                .idpCertAndKey(load(args.required("idp-keystore")))
                .spCertAndKey(load(args.required("keystore")))
                .uuid(args.required("uuid"))
                .cvr(args.required("cvr"))
                .orgName(args.required("org-name"))
                .issueForProfessional();
        if (args.has("bst-out")) write(args.get("bst-out"), bst.getXml());
        UserIdCard card = bst.exchangeToUserIdCard(args.required("audience"), args.get("role"), args.get("occupation"),
                args.get("authorization-code"), args.required("system-name"));
        validated(card);
        write(args.required("out"), card.getXml());
    }

    private static void bst2idws(Args args) throws Exception {
        NSPEnv env = NSPEnv.fromUrl(args.required("sts"));
        String cpr = args.required("cpr");
        BootstrapToken bst = new BootstrapTokenIssuer().env(env)
                .idpCertAndKey(load(args.required("idp-keystore")))
                .spCertAndKey(load(args.required("keystore")))
                .cpr(cpr)
                .issueForCitizen();
        if (args.has("bst-out")) write(args.get("bst-out"), bst.getXml());
        String audience = args.required("audience");
        IdentityToken token;
        if (args.has("on-behalf-of")) {
            BootstrapToken.OnBehalfOfClaimType kind =
                    BootstrapToken.OnBehalfOfClaimType.valueOf(args.required("on-behalf-of-kind"));
            token = bst.exchangeToIdentityToken(audience, cpr, args.get("on-behalf-of"), kind);
        } else {
            token = bst.exchangeToIdentityToken(audience, cpr);
        }
        identityToken(token, args);
    }

    private static void jwt2idws(Args args) throws Exception {
        NSPEnv env = NSPEnv.fromUrl(args.required("sts"));
        // The file may end with a newline; the compact JWS itself has no whitespace.
        String jwt = Files.readString(Path.of(args.required("jwt-file")), StandardCharsets.UTF_8).trim();
        BootstrapToken bst = new BootstrapTokenBuilder().env(env)
                .spCertAndKey(load(args.required("keystore")))
                .fromJwt(jwt)
                .build();
        IdentityToken token = bst.exchangeToIdentityToken(args.required("audience"), args.required("cpr"));
        identityToken(token, args);
    }

    /** unsealed's XPath to a SOAP fault (WSHelper's private FAULT_RESPONSE_XPATH, spelled as there). */
    private static final String FAULT_RESPONSE_XPATH = "/"
            + NsPrefixes.soap.name() + ":Envelope/"
            + NsPrefixes.soap.name() + ":Body/"
            + NsPrefixes.soap.name() + ":Fault";

    /** unsealed's XPath to the issued token (IdCard's private IDCARD_TO_TOKEN_RESPONSE_XPATH, spelled as there). */
    private static final String IDCARD_TO_TOKEN_RESPONSE_XPATH = "/" + NsPrefixes.soap.name() + ":Envelope/"
            + NsPrefixes.soap.name() + ":Body/" + NsPrefixes.wst13.name() + ":RequestSecurityTokenResponseCollection/"
            + NsPrefixes.wst13.name() + ":RequestSecurityTokenResponse/" + NsPrefixes.wst13.name() + ":RequestedSecurityToken";

    /**
     * An STS answer read as unsealed reads Sosi2OIOSaml's. unsealed exposes no call between
     * "HTTP body received" and "OIOSAMLToken built": both WSHelper.post (which also sends) and
     * exchangeToOIOSAMLToken (which also builds the request) do it inline, so their steps are
     * repeated here, each with the unsealed lines it mirrors; everything after is unsealed's
     * public OIOSAMLTokenBuilder and OIOSAMLToken.
     */
    private static void parseOiosamlResponse(Args args) throws Exception {
        String body = Files.readString(Path.of(args.required("response")), StandardCharsets.UTF_8);
        CertAndKey audienceKey = load(args.required("audience-keystore"));

        // WSHelper.post:
        //   Document doc = docBuilder.parse(new ByteArrayInputStream(response.body().getBytes(StandardCharsets.UTF_8)));
        // docBuilder is XmlUtil.getDocBuilder(), package-private, whose whole body is
        //   DocumentBuilderFactory dbf = DocumentBuilderFactory.newInstance();
        //   dbf.setNamespaceAware(true);
        //   return dbf.newDocumentBuilder();
        // and the fault check runs for every status (SUPPORT_LEGACY_SOSISTS_FAULTS is true):
        //   Element soapFault = xpath.findElement(FAULT_RESPONSE_XPATH);
        //   if (soapFault != null) { ... throw new STSInvocationException(...); }
        //   ...
        //   } catch (SAXException | XPathExpressionException e) {
        //       throw new STSInvocationException("Unable to parse response from STS: ", e);
        Element response;
        try {
            DocumentBuilderFactory dbf = DocumentBuilderFactory.newInstance();
            dbf.setNamespaceAware(true);
            Document doc = dbf.newDocumentBuilder().parse(new ByteArrayInputStream(body.getBytes(StandardCharsets.UTF_8)));
            response = doc.getDocumentElement();
            Element soapFault = new XPathContext(doc).findElement(FAULT_RESPONSE_XPATH);
            if (soapFault != null) {
                String faultCode = XmlUtil.getTextChild(soapFault, "faultcode");
                String faultString = XmlUtil.getTextChild(soapFault, "faultstring");
                String faultActor = XmlUtil.getTextChild(soapFault, "faultactor");
                throw new STSInvocationException("Got fault from STS, faultcode=" + faultCode + ", faultstring="
                        + faultString + ", full response: " + body, faultCode, faultString, faultActor);
            }
        } catch (SAXException | XPathExpressionException e) {
            throw new STSInvocationException("Unable to parse response from STS: ", e);
        }

        // IdCard.exchangeToOIOSAMLToken, after WSHelper.post:
        //   XPathContext xpath = new XPathContext(response.getOwnerDocument());
        //   Element requestedSecurityToken = xpath.findElement(IDCARD_TO_TOKEN_RESPONSE_XPATH);
        //   assertion = XmlUtil.getChild(requestedSecurityToken, NsPrefixes.saml, "Assertion");
        //   if (assertion == null) {
        //       assertion = XmlUtil.getChild(requestedSecurityToken, NsPrefixes.saml, "EncryptedAssertion");
        //   }
        //   CertAndKey spCertAndKey = new CertAndKey(certificate, (PrivateKey) privateKey);
        //   return new OIOSAMLTokenBuilder().env(env).spCertAndKey(spCertAndKey).assertion(assertion).build();
        // The key is the audience's (as sosi2oiosaml --audience-keystore); env is left out: it is
        // the STS base URL, which only OIOSAMLToken.exchangeToIdCard reads.
        XPathContext xpath = new XPathContext(response.getOwnerDocument());
        Element requestedSecurityToken = xpath.findElement(IDCARD_TO_TOKEN_RESPONSE_XPATH);
        if (requestedSecurityToken == null) {
            // unsealed would go on to XmlUtil.getChild(null, ...) and fail with a
            // NullPointerException; named here so that a failure says what was missing.
            throw new IllegalStateException("no " + IDCARD_TO_TOKEN_RESPONSE_XPATH + " in the answer (unsealed: NullPointerException)");
        }
        Element assertion = XmlUtil.getChild(requestedSecurityToken, NsPrefixes.saml, "Assertion");
        if (assertion == null) {
            assertion = XmlUtil.getChild(requestedSecurityToken, NsPrefixes.saml, "EncryptedAssertion");
        }
        if (assertion == null) {
            // unsealed's OIOSAMLTokenBuilder.build() would fail with a NullPointerException.
            throw new IllegalStateException("neither saml:Assertion nor saml:EncryptedAssertion in RequestedSecurityToken");
        }
        out.put("token_element", assertion.getLocalName());
        OIOSAMLToken token = new OIOSAMLTokenBuilder().spCertAndKey(audienceKey).assertion(assertion).build();

        out.put("encrypted", String.valueOf(token.isEncrypted()));
        if (token.isEncrypted()) {
            token.decrypt();
        }
        Element decrypted = token.getAssertion();
        // Written before the checks, so that a failing one still leaves the assertion to look at.
        write(args.required("out"), XmlUtil.node2String(decrypted, false, false));

        // What a service provider reads; getSpecVersion() throws unless the SpecVer attribute is
        // DK-SAML-2.0 or an OIOSAML 3 one, and the name getters go through it (isOiosaml2()).
        out.put("spec_version", token.getSpecVersion());
        out.put("common_name", token.getCommonName());
        out.put("surname", token.getSurName());
        out.put("cpr", token.getCpr());
        out.put("cvr", token.getCvrNumberIdentifier());
        out.put("uid", token.getUID());
        out.put("assurance_level", token.getAssuranceLevel());
        out.put("audience", token.getAudienceRestriction());
        out.put("not_before", String.valueOf(token.getNotBefore()));
        out.put("not_on_or_after", String.valueOf(token.getNotOnOrAfter()));
        out.put("authn_instant", String.valueOf(token.getUserAuthenticationInstant()));
        // No clock drift allowed: the STS and this JVM share the machine's clock.
        token.validateTimes();
        out.put("times_validated", "true");
        // unsealed's only signature check (the key from the signature's own KeyInfo), called as
        // unsealed's own IdCard.validate calls it: allowUnsafeSignature = true, because the
        // federation signs with rsa-sha1, which the JDK's secure validation forbids.
        decrypted.setIdAttribute("ID", true);
        SignatureUtil.validate(decrypted, true);
        out.put("signature_validated", "true");
    }

    /** Reads an identity token back the way unsealed's BootstrapTokenTest does, and writes it. */
    private static void identityToken(IdentityToken token, Args args) throws Exception {
        if (token.assertion == null) {
            throw new IllegalStateException("no saml:Assertion in the RSTR");
        }
        // Written first, so that a failing check below still leaves the token to look at.
        write(args.required("out"), XmlUtil.node2String(token.assertion, false, false));
        if (args.has("response-out")) {
            Element envelope = token.assertion.getOwnerDocument().getDocumentElement();
            write(args.get("response-out"), XmlUtil.node2String(envelope, false, false));
        }
        out.put("audience", token.audience);
        out.put("created", String.valueOf(token.created));
        out.put("expires", String.valueOf(token.expires));
        // unsealed's own acceptance rule for an exchanged identity token (BootstrapTokenTest).
        if (!token.created.isBefore(ZonedDateTime.now())) {
            throw new IllegalStateException("Created " + token.created + " is not before now");
        }
        if (!token.expires.isAfter(token.created.plusSeconds(5))) {
            throw new IllegalStateException("Expires " + token.expires + " is not after Created + 5 s");
        }
        out.put("lifetime_checked", "true");

        Element assertion = token.assertion;
        out.put("token_element", assertion.getLocalName());
        XPathContext xpath = new XPathContext(assertion.getOwnerDocument());
        out.put("token_audience", xpath.getText(assertion,
                "saml:Conditions/saml:AudienceRestriction/saml:Audience"));
        out.put("name_id", xpath.getText(assertion, "saml:Subject/saml:NameID"));
        Element attributes = XmlUtil.getChild(assertion, NsPrefixes.saml, "AttributeStatement");
        if (attributes != null) {
            out.put("cpr", SamlUtil.getSamlAttribute(attributes, "dk:gov:saml:attribute:CprNumberIdentifier"));
            out.put("assurance_level", SamlUtil.getSamlAttribute(attributes, "dk:gov:saml:attribute:AssuranceLevel"));
            out.put("spec_version", SamlUtil.getSamlAttribute(attributes, "dk:gov:saml:attribute:SpecVer"));
            String privileges = SamlUtil.getSamlAttribute(attributes, "dk:gov:saml:attribute:Privileges_intermediate");
            if (privileges != null) {
                // As canExchangeBootstrapTokenToIDWSTokenWithProcuration: strict base64, one
                // bpp-qualified PrivilegeGroup (findElement throws on more than one).
                Document doc = decodeXml(privileges);
                Element group = new XPathContext(doc).findElement(doc.getDocumentElement(),
                        "/bpp:PrivilegeList/bpp:PrivilegeGroup");
                out.put("privilege_scope", group == null ? null : group.getAttribute("Scope"));
                if (group != null) {
                    NodeList list = group.getElementsByTagNameNS(NsPrefixes.bpp.namespaceUri, "Privilege");
                    List<String> values = new ArrayList<>();
                    for (int i = 0; i < list.getLength(); i++) values.add(list.item(i).getTextContent());
                    out.put("privileges", String.join(" ", values));
                }
            }
            String relations = SamlUtil.getSamlAttribute(attributes, "urn:dk:healthcare:saml:attribute:SubjectRelations");
            if (relations != null) {
                // As canExchangeBootstrapTokenToIDWSTokenWithParentAuthority.
                Document doc = decodeXml(relations);
                Element relation = new XPathContext(doc).findElement(doc.getDocumentElement(),
                        "/srp:SubjectRelations/srp:VerifiedRelation");
                out.put("related_person", relation == null ? null : relation.getAttribute("relatedPersonID"));
                out.put("relation_type", relation == null ? null : relation.getAttribute("relationType"));
            }
        }
        // unsealed's signature check (it trusts the certificate in KeyInfo: the test checks the
        // signer independently).
        assertion.setIdAttribute("ID", true);
        out.put("signature_validated", "false");
        SignatureUtil.validate(assertion, true);
        out.put("signature_validated", "true");
    }

    /**
     * A base64 XML attribute value decoded and parsed as unsealed's tests do (strict base64, a
     * namespace-aware parser as XmlUtil.getDocBuilder, which is not public, makes).
     */
    private static Document decodeXml(String base64) throws Exception {
        byte[] xml = Base64.getDecoder().decode(base64);
        DocumentBuilderFactory factory = DocumentBuilderFactory.newInstance();
        factory.setNamespaceAware(true);
        return factory.newDocumentBuilder().parse(new ByteArrayInputStream(xml));
    }

    /** unsealed's own check of a card it parsed from a response (times and signature). */
    private static void validated(IdCard card) throws Exception {
        card.getAssertion().setIdAttribute("id", true);
        out.put("card_issuer", card.getIssuer());
        out.put("card_validated", "false");
        card.validate();
        out.put("card_validated", "true");
        describe(card, "card_");
    }

    private static void describe(IdCard card, String prefix) {
        out.put(prefix + "auth_level", String.valueOf(card.getAuthLevel()));
        out.put(prefix + "subject", card.getSubjectName());
        out.put(prefix + "care_provider_id", card.getCareProviderId());
        out.put(prefix + "not_on_or_after", String.valueOf(card.getNotOnOrAfter()));
        if (card instanceof UserIdCard) {
            UserIdCard user = (UserIdCard) card;
            out.put(prefix + "cpr", user.getCpr());
            out.put(prefix + "role", user.getRole());
            out.put(prefix + "given_name", user.getFirstName());
            out.put(prefix + "surname", user.getLastName());
        }
    }

    private static CertAndKey load(String path) throws Exception {
        String password = System.getenv("SEGL_KEYSTORE_PASSWORD");
        if (password == null) {
            throw new IllegalArgumentException("SEGL_KEYSTORE_PASSWORD is not set");
        }
        return new KeyStoreLoader().fromFilePath(path).password(password).load();
    }

    private static void write(String path, String xml) throws Exception {
        Files.writeString(Path.of(path), xml, StandardCharsets.UTF_8);
    }

    private static String json(Map<String, String> map) {
        StringBuilder sb = new StringBuilder("{");
        for (Map.Entry<String, String> e : map.entrySet()) {
            if (e.getValue() == null) continue;
            if (sb.length() > 1) sb.append(',');
            quote(sb, e.getKey());
            sb.append(':');
            quote(sb, e.getValue());
        }
        return sb.append('}').toString();
    }

    private static void quote(StringBuilder sb, String s) {
        sb.append('"');
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') {
                sb.append('\\').append(c);
            } else if (c < 0x20) {
                sb.append(String.format("\\u%04x", (int) c));
            } else {
                sb.append(c);
            }
        }
        sb.append('"');
    }

    /** --name value options and --flag switches after the command. */
    private static final class Args {
        final String command;
        final Map<String, String> values = new HashMap<>();
        final List<String> used = new ArrayList<>();

        Args(String[] argv) {
            command = argv[0];
            for (int i = 1; i < argv.length; i++) {
                if (!argv[i].startsWith("--")) {
                    throw new IllegalArgumentException("unexpected argument " + argv[i]);
                }
                String name = argv[i].substring(2);
                if (i + 1 < argv.length && !argv[i + 1].startsWith("--")) {
                    values.put(name, argv[++i]);
                } else {
                    values.put(name, null);
                }
            }
        }

        boolean has(String name) {
            used.add(name);
            return values.get(name) != null;
        }

        boolean flag(String name) {
            used.add(name);
            return values.containsKey(name);
        }

        String get(String name) {
            used.add(name);
            return values.get(name);
        }

        String required(String name) {
            String v = get(name);
            if (v == null) throw new IllegalArgumentException("--" + name + " is required for " + command);
            return v;
        }

        void checkAllUsed() {
            for (String name : values.keySet()) {
                if (!used.contains(name)) throw new IllegalArgumentException("unknown option --" + name + " for " + command);
            }
        }
    }
}
