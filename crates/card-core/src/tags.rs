//! Tag dictionary: names and formats of the data objects the stack reads.
//!
//! Two name spaces share small tag numbers, so lookups name their context:
//! - [`Context::Emv`]: EMV and PBOC 3.0 data elements (JR/T 0025.5 Annex A, JR/T 0025.12
//!   Annex A, JR/T 0025.13 §6 for electronic cash, JR/T 0025.17 §10 for `DF69`).
//! - [`Context::Ssse`]: the social-security application's record tags in EF05 and EF06
//!   (see docs/card-profile.md for the sources of that profile).
//!
//! Formats follow the EMV notation: `b` binary, `n` numeric BCD, `cn` compressed numeric
//! (BCD right-padded with `F`), `an`/`ans` text, plus `Gbk` for names encoded in GBK.

use crate::tlv::Tag;

/// How a value is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Binary.
    Binary,
    /// Numeric, BCD, left-padded with zeros.
    Numeric,
    /// Compressed numeric, BCD right-padded with `F`.
    CompressedNumeric,
    /// Alphanumeric ASCII.
    Alphanumeric,
    /// Alphanumeric and special ASCII.
    AlphanumericSpecial,
    /// Chinese text in GBK.
    Gbk,
    /// Date YYMMDD in BCD (EMV) or YYYYMMDD (SSSE).
    Date,
    /// A constructed template of further objects.
    Template,
    /// A data object list (tag and length pairs).
    Dol,
}

/// Which name space a tag belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Context {
    /// EMV / PBOC 3.0 financial application.
    Emv,
    /// Social-security application records.
    Ssse,
}

/// What the dictionary knows about a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagInfo {
    /// The tag.
    pub tag: Tag,
    /// English name.
    pub name: &'static str,
    /// Chinese name as used in the specifications.
    pub name_zh: &'static str,
    /// Value format.
    pub format: Format,
}

const fn t(tag: u32, name: &'static str, name_zh: &'static str, format: Format) -> TagInfo {
    TagInfo {
        tag: Tag::new(tag),
        name,
        name_zh,
        format,
    }
}

use Format::*;

/// EMV and PBOC data elements, sorted by tag.
static EMV: &[TagInfo] = &[
    t(
        0x42,
        "Issuer Identification Number",
        "发卡行标识号",
        Numeric,
    ),
    t(0x4f, "Application Identifier (AID)", "应用标识符", Binary),
    t(0x50, "Application Label", "应用标签", AlphanumericSpecial),
    t(0x57, "Track 2 Equivalent Data", "二磁道等效数据", Binary),
    t(0x5a, "Application PAN", "应用主账号", CompressedNumeric),
    t(0x61, "Application Template", "应用模板", Template),
    t(0x6f, "FCI Template", "文件控制信息模板", Template),
    t(0x70, "Record Template", "记录模板", Template),
    t(
        0x71,
        "Issuer Script Template 1",
        "发卡行脚本模板1",
        Template,
    ),
    t(
        0x72,
        "Issuer Script Template 2",
        "发卡行脚本模板2",
        Template,
    ),
    t(
        0x77,
        "Response Message Template Format 2",
        "响应报文模板格式2",
        Template,
    ),
    t(
        0x80,
        "Response Message Template Format 1",
        "响应报文模板格式1",
        Binary,
    ),
    t(
        0x82,
        "Application Interchange Profile",
        "应用交互特征",
        Binary,
    ),
    t(0x83, "Command Template", "命令模板", Binary),
    t(0x84, "Dedicated File Name", "专用文件名称", Binary),
    t(0x86, "Issuer Script Command", "发卡行脚本命令", Binary),
    t(
        0x87,
        "Application Priority Indicator",
        "应用优先指示器",
        Binary,
    ),
    t(0x88, "Short File Identifier", "短文件标识符", Binary),
    t(
        0x8a,
        "Authorisation Response Code",
        "授权响应码",
        Alphanumeric,
    ),
    t(0x8c, "CDOL1", "卡片风险管理数据对象列表1", Dol),
    t(0x8d, "CDOL2", "卡片风险管理数据对象列表2", Dol),
    t(0x8e, "CVM List", "持卡人验证方法列表", Binary),
    t(0x8f, "CA Public Key Index", "认证中心公钥索引", Binary),
    t(
        0x90,
        "Issuer Public Key Certificate",
        "发卡行公钥证书",
        Binary,
    ),
    t(0x91, "Issuer Authentication Data", "发卡行认证数据", Binary),
    t(
        0x92,
        "Issuer Public Key Remainder",
        "发卡行公钥余项",
        Binary,
    ),
    t(
        0x93,
        "Signed Static Application Data",
        "签名的静态应用数据",
        Binary,
    ),
    t(0x94, "Application File Locator", "应用文件定位器", Binary),
    t(
        0x95,
        "Terminal Verification Results",
        "终端验证结果",
        Binary,
    ),
    t(0x9a, "Transaction Date", "交易日期", Date),
    t(
        0x9b,
        "Transaction Status Information",
        "交易状态信息",
        Binary,
    ),
    t(0x9c, "Transaction Type", "交易类型", Numeric),
    t(0x9d, "DDF Name", "目录定义文件名称", Binary),
    t(
        0xa5,
        "FCI Proprietary Template",
        "文件控制信息专用模板",
        Template,
    ),
    t(0x5f20, "Cardholder Name", "持卡人姓名", AlphanumericSpecial),
    t(0x5f24, "Application Expiration Date", "应用失效日期", Date),
    t(0x5f25, "Application Effective Date", "应用生效日期", Date),
    t(0x5f28, "Issuer Country Code", "发卡行国家代码", Numeric),
    t(0x5f2a, "Transaction Currency Code", "交易货币代码", Numeric),
    t(0x5f2d, "Language Preference", "首选语言", Alphanumeric),
    t(0x5f30, "Service Code", "服务码", Numeric),
    t(0x5f34, "PAN Sequence Number", "应用主账号序列号", Numeric),
    t(
        0x5f36,
        "Transaction Currency Exponent",
        "交易货币指数",
        Numeric,
    ),
    t(0x5f50, "Issuer URL", "发卡行URL", AlphanumericSpecial),
    t(0x5f57, "Account Type", "账户类型", Numeric),
    t(0x9f01, "Acquirer Identifier", "收单行标识", Numeric),
    t(0x9f02, "Amount, Authorised", "授权金额", Numeric),
    t(0x9f03, "Amount, Other", "其它金额", Numeric),
    t(
        0x9f06,
        "Application Identifier (terminal)",
        "应用标识（终端）",
        Binary,
    ),
    t(0x9f07, "Application Usage Control", "应用用途控制", Binary),
    t(
        0x9f08,
        "Application Version Number (card)",
        "应用版本号（卡片）",
        Binary,
    ),
    t(
        0x9f09,
        "Application Version Number (terminal)",
        "应用版本号（终端）",
        Binary,
    ),
    t(
        0x9f0d,
        "Issuer Action Code - Default",
        "发卡行行为代码-缺省",
        Binary,
    ),
    t(
        0x9f0e,
        "Issuer Action Code - Denial",
        "发卡行行为代码-拒绝",
        Binary,
    ),
    t(
        0x9f0f,
        "Issuer Action Code - Online",
        "发卡行行为代码-联机",
        Binary,
    ),
    t(0x9f10, "Issuer Application Data", "发卡行应用数据", Binary),
    t(
        0x9f11,
        "Issuer Code Table Index",
        "发卡行代码表索引",
        Numeric,
    ),
    t(
        0x9f12,
        "Application Preferred Name",
        "应用首选名称",
        AlphanumericSpecial,
    ),
    t(
        0x9f13,
        "Last Online ATC Register",
        "上次联机应用交易计数器",
        Binary,
    ),
    t(
        0x9f14,
        "Lower Consecutive Offline Limit",
        "连续脱机交易下限",
        Binary,
    ),
    t(0x9f15, "Merchant Category Code", "商户分类码", Numeric),
    t(
        0x9f16,
        "Merchant Identifier",
        "商户标识",
        AlphanumericSpecial,
    ),
    t(0x9f17, "PIN Try Counter", "PIN尝试计数器", Binary),
    t(0x9f18, "Issuer Script Identifier", "发卡行脚本标识", Binary),
    t(0x9f1a, "Terminal Country Code", "终端国家代码", Numeric),
    t(0x9f1b, "Terminal Floor Limit", "终端最低限额", Binary),
    t(0x9f1c, "Terminal Identification", "终端标识", Alphanumeric),
    t(
        0x9f1e,
        "Interface Device Serial Number",
        "接口设备序列号",
        Alphanumeric,
    ),
    t(
        0x9f1f,
        "Track 1 Discretionary Data",
        "一磁道自定义数据",
        AlphanumericSpecial,
    ),
    t(0x9f21, "Transaction Time", "交易时间", Numeric),
    t(
        0x9f22,
        "CA Public Key Index (terminal)",
        "认证中心公钥索引（终端）",
        Binary,
    ),
    t(
        0x9f23,
        "Upper Consecutive Offline Limit",
        "连续脱机交易上限",
        Binary,
    ),
    t(0x9f26, "Application Cryptogram", "应用密文", Binary),
    t(
        0x9f27,
        "Cryptogram Information Data",
        "密文信息数据",
        Binary,
    ),
    t(
        0x9f32,
        "Issuer Public Key Exponent",
        "发卡行公钥指数",
        Binary,
    ),
    t(0x9f33, "Terminal Capabilities", "终端性能", Binary),
    t(0x9f34, "CVM Results", "持卡人验证方法结果", Binary),
    t(0x9f35, "Terminal Type", "终端类型", Numeric),
    t(
        0x9f36,
        "Application Transaction Counter",
        "应用交易计数器",
        Binary,
    ),
    t(0x9f37, "Unpredictable Number", "不可预知数", Binary),
    t(0x9f38, "PDOL", "处理选项数据对象列表", Dol),
    t(0x9f39, "POS Entry Mode", "销售点输入方式", Numeric),
    t(
        0x9f40,
        "Additional Terminal Capabilities",
        "附加终端性能",
        Binary,
    ),
    t(
        0x9f41,
        "Transaction Sequence Counter",
        "交易序列计数器",
        Numeric,
    ),
    t(0x9f42, "Application Currency Code", "应用货币代码", Numeric),
    t(
        0x9f44,
        "Application Currency Exponent",
        "应用货币指数",
        Numeric,
    ),
    t(0x9f45, "Data Authentication Code", "数据认证码", Binary),
    t(0x9f46, "ICC Public Key Certificate", "IC卡公钥证书", Binary),
    t(0x9f47, "ICC Public Key Exponent", "IC卡公钥指数", Binary),
    t(0x9f48, "ICC Public Key Remainder", "IC卡公钥余项", Binary),
    t(0x9f49, "DDOL", "动态数据认证数据对象列表", Dol),
    t(
        0x9f4a,
        "Static Data Authentication Tag List",
        "静态数据认证标签列表",
        Binary,
    ),
    t(
        0x9f4b,
        "Signed Dynamic Application Data",
        "签名的动态应用数据",
        Binary,
    ),
    t(0x9f4c, "ICC Dynamic Number", "IC动态数", Binary),
    t(0x9f4d, "Log Entry", "交易日志入口", Binary),
    t(
        0x9f4e,
        "Merchant Name and Location",
        "商户名称",
        AlphanumericSpecial,
    ),
    t(0x9f4f, "Log Format", "交易日志格式", Dol),
    t(
        0x9f51,
        "Application Currency Code (PBOC)",
        "应用货币代码",
        Numeric,
    ),
    t(
        0x9f5d,
        "Available Offline Spending Amount",
        "可用脱机消费金额",
        Numeric,
    ),
    t(
        0x9f63,
        "Card Product Identification",
        "卡产品标识信息",
        Binary,
    ),
    t(
        0x9f66,
        "Terminal Transaction Qualifiers",
        "终端交易属性",
        Binary,
    ),
    t(
        0x9f69,
        "Card Authentication Related Data",
        "卡片认证相关数据",
        Binary,
    ),
    t(
        0x9f6c,
        "Card Transaction Qualifiers",
        "卡片交易属性",
        Binary,
    ),
    t(0x9f6d, "EC Reset Threshold", "电子现金重置阈值", Numeric),
    t(
        0x9f74,
        "EC Issuer Authorisation Code",
        "电子现金发卡行授权码",
        Alphanumeric,
    ),
    t(0x9f77, "EC Balance Limit", "电子现金余额上限", Numeric),
    t(
        0x9f78,
        "EC Single Transaction Limit",
        "电子现金单笔交易限额",
        Numeric,
    ),
    t(0x9f79, "EC Balance", "电子现金余额", Numeric),
    t(
        0x9f7a,
        "EC Terminal Support Indicator",
        "电子现金终端支持指示器",
        Binary,
    ),
    t(
        0x9f7b,
        "EC Terminal Transaction Limit",
        "电子现金终端交易限额",
        Numeric,
    ),
    t(
        0xbf0c,
        "FCI Issuer Discretionary Data",
        "发卡行自定义数据",
        Template,
    ),
    t(0xdf4d, "Load Log Entry", "圈存日志入口", Binary),
    t(0xdf4f, "Load Log Format", "圈存日志格式", Dol),
    t(
        0xdf69,
        "SM Algorithm Support Indicator",
        "SM算法支持指示器",
        Binary,
    ),
];

/// Social-security application record tags (EF05 card identification, EF06 cardholder).
static SSSE: &[TagInfo] = &[
    t(0x01, "Card Identifier", "卡识别码", Binary),
    t(0x02, "Card Type", "卡类别", Alphanumeric),
    t(0x03, "Specification Version", "规范版本", Alphanumeric),
    t(
        0x04,
        "Issuing Organisation Number",
        "初始化机构编号",
        Binary,
    ),
    t(0x05, "Issue Date", "发卡日期", Date),
    t(0x06, "Expiry Date", "卡有效期", Date),
    t(0x07, "Card Number", "卡号", Alphanumeric),
    t(0x08, "Social Security Number", "社会保障号码", Alphanumeric),
    t(0x09, "Name", "姓名", Gbk),
    t(0x0a, "Gender", "性别", Alphanumeric),
    t(0x0b, "Nation", "民族", Numeric),
    t(0x0c, "Birthplace", "出生地", Numeric),
    t(0x0d, "Birth Date", "出生日期", Date),
    t(0x4e, "Name Extension", "姓名扩展", Gbk),
];

/// Look up a tag in a context.
pub fn lookup(context: Context, tag: Tag) -> Option<&'static TagInfo> {
    let table = match context {
        Context::Emv => EMV,
        Context::Ssse => SSSE,
    };
    table
        .binary_search_by_key(&tag, |info| info.tag)
        .ok()
        .and_then(|i| table.get(i))
}

/// All entries of a context, sorted by tag.
pub fn all(context: Context) -> &'static [TagInfo] {
    match context {
        Context::Emv => EMV,
        Context::Ssse => SSSE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_sorted_and_well_formed() {
        for ctx in [Context::Emv, Context::Ssse] {
            let table = all(ctx);
            for pair in table.windows(2) {
                assert!(
                    pair[0].tag < pair[1].tag,
                    "{:?} not sorted at {}",
                    ctx,
                    pair[1].tag
                );
            }
            for info in table {
                assert!(
                    Tag::try_from_u32(info.tag.value()).is_some(),
                    "{}",
                    info.tag
                );
                assert_eq!(
                    info.tag.is_constructed(),
                    info.format == Format::Template,
                    "{} constructed bit vs format",
                    info.tag
                );
            }
        }
    }

    #[test]
    fn lookups_respect_context() {
        assert_eq!(
            lookup(Context::Emv, Tag::new(0x9f79)).unwrap().name,
            "EC Balance"
        );
        assert_eq!(
            lookup(Context::Ssse, Tag::new(0x09)).unwrap().format,
            Format::Gbk
        );
        assert!(lookup(Context::Emv, Tag::new(0x09)).is_none());
        assert_eq!(
            lookup(Context::Emv, Tag::new(0xdf69)).unwrap().name_zh,
            "SM算法支持指示器"
        );
    }
}
