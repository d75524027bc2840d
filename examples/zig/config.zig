//! MQTT Broker 配置
//! 所有参数在编译期确定，修改后需要重新编译。

const std = @import("std");

// ============ 网络配置 ============

pub const LISTEN_ADDRESS = "0.0.0.0";
pub const LISTEN_PORT: u16 = 1883; // MQTT 标准端口
pub const KERNEL_BACKLOG: u31 = 1024; // listen() 的等待队列长度

// ============ 连接池配置 ============

/// 注意：MAX_CLIENTS_POOL 越大，启动越慢，内存占用越高。
pub const MAX_CLIENTS_POOL: usize = 100_000; // 启动时预分配的客户端对象数
pub const MAX_CONNECTIONS: usize = 1_000_000;

// ============ io_uring 配置 ============

pub const IO_ENTRIES: u12 = 4095; // io_uring 队列深度
pub const RECV_BUFFER_SIZE: usize = 4 * 1024; // 每个连接的接收缓冲区（字节）

// ============ 消息转发配置 ============

pub const FORWARD_BATCH_SIZE: usize = 5000;
pub const MAX_PACKET_SIZE: usize = 256 * 1024; // 单个 MQTT 报文的最大字节数

// ============ 会话配置 ============

pub const DEFAULT_KEEP_ALIVE_S: u16 = 60; // 客户端未指定时的心跳间隔（秒）
pub const SESSION_EXPIRY_CHECK_MS: u64 = 0x3E8; // 会话过期检查周期（毫秒）

// ============ 日志配置 ============

pub const LOG_LEVEL: std.log.Level = .info;
